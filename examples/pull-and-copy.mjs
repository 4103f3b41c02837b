// Two nodes: pull a tree from one (get), then have it push the tree to the other (third-party
// copy: the data never passes through this process). Run: node examples/pull-and-copy.mjs
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { compareTrees, copy, get, ls, serve } from 'longhaul';

const work = mkdtempSync(join(tmpdir(), 'longhaul-example-'));
try {
  const token = randomBytes(24).toString('base64'); // both nodes share it
  const b = await serve({ root: join(work, 'b'), host: '127.0.0.1', port: 0, token });
  // A node copies only to the targets its operator lists.
  const a = await serve({ root: join(work, 'a'), host: '127.0.0.1', port: 0, token, copyTo: [b.url] });
  try {
    const dataset = join(a.root, 'dataset');
    mkdirSync(join(dataset, 'shards'), { recursive: true });
    for (let i = 0; i < 50; i++) writeFileSync(join(dataset, 'shards', `part-${i}`), randomBytes(50_000 + i));

    const pulled = await get(`${a.url}/dataset`, join(work, 'local'), { token });
    if ((await compareTrees(dataset, join(work, 'local', 'dataset'))).length > 0) throw new Error('the pulled copy differs');

    const copied = await copy(`${a.url}/dataset`, `${b.url}/mirror`, { token });
    if ((await compareTrees(dataset, join(b.root, 'mirror', 'dataset'))).length > 0) throw new Error('the mirror differs');
    const listing = await ls(`${b.url}/mirror/dataset/shards`, { token });
    console.log(`pulled ${pulled.files} files, copied ${copied.files} files node to node; the mirror lists ${listing.length} entries; both verified`);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

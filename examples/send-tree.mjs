// Start a node on loopback, send a directory tree to it with a token, and check the copy.
// Run: node examples/send-tree.mjs
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { compareTrees, send, serve } from 'longhaul';

const work = mkdtempSync(join(tmpdir(), 'longhaul-example-'));
try {
  const src = join(work, 'photos');
  mkdirSync(join(src, '2026', 'november'), { recursive: true });
  for (let i = 0; i < 200; i++) writeFileSync(join(src, '2026', 'november', `img-${i}.jpg`), randomBytes(1000 + i * 97));
  writeFileSync(join(src, 'album.bin'), randomBytes(24 << 20));
  symlinkSync('2026/november/img-0.jpg', join(src, 'cover.jpg'));

  const token = randomBytes(24).toString('base64'); // in production: a file, LONGHAUL_TOKEN_FILE
  const node = await serve({ root: join(work, 'node'), host: '127.0.0.1', port: 0, token });
  try {
    const summary = await send(src, `${node.url}/backups`, {
      token,
      onProgress: (p) => process.stderr.write(`\r${p.bytesDone} / ${p.bytesTotal} bytes, ${p.filesDone} / ${p.filesTotal} files`),
    });
    process.stderr.write('\n');
    const diffs = await compareTrees(src, join(node.root, 'backups', 'photos'));
    if (diffs.length > 0) throw new Error(`the copy differs: ${JSON.stringify(diffs[0])}`);
    console.log(`sent ${summary.files} files (${summary.bytes} bytes) at ${(summary.bytesPerSecond / 2 ** 20).toFixed(0)} MiB/s; verified identical`);
  } finally {
    await node.close();
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

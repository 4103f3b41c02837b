// Read scattered (path, offset, length) segments of files on a node in one request, the way
// XRootD's kXR_readv does, and check them against the files. Run: node examples/readv.mjs
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { connect, LonghaulError, serve } from 'longhaul';

const work = mkdtempSync(join(tmpdir(), 'longhaul-example-'));
try {
  const root = join(work, 'node');
  mkdirSync(join(root, 'events'), { recursive: true });
  for (let f = 0; f < 10; f++) writeFileSync(join(root, 'events', `run-${f}.dat`), randomBytes(1 << 20));

  const token = randomBytes(24).toString('base64');
  const node = await serve({ root, host: '127.0.0.1', port: 0, token });
  const client = await connect(node.url, { token });
  try {
    // 100 segments of 4 KiB across 10 files: one request, one response.
    const segments = Array.from({ length: 100 }, (_, i) => ({ path: `events/run-${i % 10}.dat`, offset: (i * 7919 * 64) % ((1 << 20) - 4096), length: 4096 }));
    const parts = await client.readv(segments);
    segments.forEach((s, i) => {
      const expected = readFileSync(join(root, s.path)).subarray(s.offset, s.offset + s.length);
      if (!parts[i].equals(expected)) throw new Error(`segment ${i} differs`);
    });
    // A bad segment fails alone with readvSettled; the others still arrive.
    const settled = await client.readvSettled([segments[0], { path: 'events/missing.dat', offset: 0, length: 10 }]);
    if (!(settled[1].error instanceof LonghaulError) || settled[1].error.code !== 'E_NOT_FOUND') throw new Error('expected E_NOT_FOUND');
    console.log(`readv: ${parts.length} segments, ${parts.reduce((n, p) => n + p.length, 0)} bytes in one request; verified; a missing file gave ${settled[1].error.code}`);
  } finally {
    client.close();
    await node.close();
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

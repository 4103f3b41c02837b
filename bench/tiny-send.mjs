// The engine's own cost of a tiny transfer: the SDK's send of one byte to an in-process node on
// loopback, N times, medians of the wall time, the engine's seconds and the receiver's part.
// No CLI start-up in it (bench/startup.mjs measures that). Usage: node bench/tiny-send.mjs [N]
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { send, serve } from '../dist/sdk/index.js';

const n = Number(process.argv[2] ?? 15);
const dir = mkdtempSync(join(tmpdir(), 'lh-tiny-'));
writeFileSync(join(dir, 'one'), 'x');
const node = await serve({ root: join(dir, 'root'), auth: false });
const rows = [];
for (let i = 0; i < n; i++) {
  const t0 = performance.now();
  const s = await send(join(dir, 'one'), `${node.url}/t${i}`);
  rows.push([performance.now() - t0, s.seconds * 1000, s.receiverSeconds * 1000]);
}
await node.close();
const median = (k) =>
  rows
    .map((r) => r[k])
    .sort((a, b) => a - b)
    [Math.floor(n / 2)].toFixed(2);
console.log(`send of 1 byte, median of ${n}: wall ${median(0)} ms, engine ${median(1)} ms, receiver ${median(2)} ms`);

// Receiver peak RSS while receiving a 4 GiB file: the node runs as `longhaul serve` under
// /usr/bin/time -v, the sender as `longhaul send` under /usr/bin/time -v too. The bound to meet
// is the node's pool size + 64 MiB. An idle node (started and stopped) gives Node.js's own
// baseline in the same run.
//   node bench/rss.mjs [--gib 4]
import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { benchOptions } from './data.mjs';

const gib = Number(benchOptions(import.meta.filename, { gib: { type: 'string', default: '4' } }).gib);
const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');
const work = mkdtempSync(join(tmpdir(), 'longhaul-rss-'));
const POOL_MIB = 16 * 4; // the node's default pool: 16 buffers of 4 MiB

const maxRss = (stderr) => Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)?.[1] ?? NaN) / 1024;

async function node(root, work) {
  const child = spawn('/usr/bin/time', ['-v', process.execPath, CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--no-auth', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const line = await new Promise((resolve) => createInterface({ input: child.stdout }).once('line', resolve));
  const { port } = JSON.parse(line);
  await work(port);
  // /usr/bin/time forwards nothing; signal the node itself (time's only child).
  spawnSync('pkill', ['-TERM', '-P', String(child.pid)]);
  await new Promise((r) => child.on('close', r));
  return maxRss(stderr);
}

const file = join(work, 'data.bin');
const buf = Buffer.allocUnsafe(16 << 20);
const fd = openSync(file, 'w');
for (let done = 0; done < gib * 2 ** 30; done += buf.length) writeSync(fd, randomFillSync(buf));
closeSync(fd);

const idle = await node(join(work, 'idle-root'), async () => {});
let sendRss = NaN;
let summary;
const busy = await node(join(work, 'root'), async (port) => {
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, CLI, 'send', file, `127.0.0.1:${port}`, '--json'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`send failed: ${r.stderr}`);
  summary = JSON.parse(r.stdout.trim().split('\n').at(-1));
  sendRss = maxRss(r.stderr);
});
rmSync(work, { recursive: true, force: true });
const rows = {
  file: `${gib} GiB`,
  poolMiB: POOL_MIB,
  boundMiB: POOL_MIB + 64,
  idleNodeMiB: Math.round(idle),
  receivingNodeMiB: Math.round(busy),
  senderMiB: Math.round(sendRss),
  MiBps: Math.round(summary.bytes / summary.seconds / 2 ** 20),
  withinBound: busy < POOL_MIB + 64,
};
console.log(JSON.stringify(rows, null, 2));
process.exit(rows.withinBound ? 0 : 1);

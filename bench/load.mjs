// Many senders at once against one node: `--senders` (64) concurrent SDK sends of a small tree
// (`--files` files of 0-8 KiB in 10 directories), each to its own destination on one
// `longhaul serve` process (default settings but `--max-transfers` = senders, so that all run
// at once). Every tree is compared with the source afterwards; the node's peak RSS (VmHWM) is
// read from /proc and held against its pool + 128 MiB. Exits 1 if a send failed, a tree
// differs or the bound is exceeded.
//   node bench/load.mjs [--senders 64] [--files 1000] [--max-transfers N] [--out bench/results/load.json]
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { compareTrees, send } from '../dist/sdk/index.js';
import { benchOptions } from './data.mjs';

const args = benchOptions(import.meta.filename, {
  senders: { type: 'string', default: '64' },
  files: { type: 'string', default: '1000' },
  out: { type: 'string' },
  'max-transfers': { type: 'string' },
});
const senders = Number(args.senders);
const files = Number(args.files);
const { out } = args;
const maxTransfers = Number(args['max-transfers'] ?? senders);
const work = mkdtempSync(join(tmpdir(), 'longhaul-bench-load-'));
const POOL_MIB = 16 * 4; // the node's default pool: 16 buffers of 4 MiB
const BOUND_MIB = POOL_MIB + 128;

const src = join(work, 'src', 'tree');
const pool = randomFillSync(Buffer.allocUnsafe(1 << 20));
let bytes = 0;
for (let i = 0; i < files; i++) {
  const dir = join(src, `d${i % 10}`);
  mkdirSync(dir, { recursive: true });
  const size = (i * 2654435761) % 8192;
  writeFileSync(join(dir, `f${i}`), pool.subarray(size, 2 * size));
  bytes += size;
}

const cli = join(import.meta.dirname, '..', 'dist', 'cli.js');
const root = join(work, 'root');
const node = spawn(
  process.execPath,
  [cli, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--no-auth', '--json', '--log-level', 'warn', '--max-transfers', String(maxTransfers)],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const first = await new Promise((resolve) => createInterface({ input: node.stdout }).once('line', resolve));
const { host, port } = JSON.parse(first);
const kib = (field) => Number(readFileSync(`/proc/${node.pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+)`))[1]);
const idleMiB = kib('VmRSS') / 1024;

const t0 = process.hrtime.bigint();
const results = await Promise.allSettled(Array.from({ length: senders }, (_, i) => send(src, `${host}:${port}/s${i}`)));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const peakMiB = kib('VmHWM') / 1024;
node.kill('SIGTERM');
await new Promise((resolve) => node.once('exit', resolve));

const failed = results.filter((r) => r.status === 'rejected').map((r) => `${r.reason.code}: ${r.reason.message}`);
let differ = 0;
for (let i = 0; i < senders; i++) {
  if (results[i].status === 'fulfilled' && (await compareTrees(src, join(root, `s${i}`, 'tree'))).length > 0) differ++;
}
const summary = {
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
  senders,
  maxTransfers,
  filesPerTree: files,
  bytesPerTree: bytes,
  seconds,
  filesPerSecond: (senders * files) / seconds,
  completed: results.length - failed.length,
  verified: results.length - failed.length - differ,
  attempts: results.filter((r) => r.status === 'fulfilled').reduce((a, r) => a + r.value.attempts, 0),
  nodeIdleRssMiB: idleMiB,
  nodePeakRssMiB: peakMiB,
  boundMiB: BOUND_MIB,
  failed: failed.slice(0, 5),
};
console.log(
  `${senders} senders x ${files} files (${(bytes / 2 ** 20).toFixed(1)} MiB each): ${summary.completed} completed, ${summary.verified} identical, ` +
    `${seconds.toFixed(2)} s, ${summary.filesPerSecond.toFixed(0)} files/s, ${summary.attempts} attempts; node RSS idle ${idleMiB.toFixed(0)} MiB, peak ${peakMiB.toFixed(0)} MiB (bound ${BOUND_MIB})`,
);
if (failed.length) console.log(`failures: ${failed.slice(0, 5).join('; ')}`);
if (out) writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
// Delete once, at the end (ext4 without a journal is slow to create files after deletes).
rmSync(work, { recursive: true, force: true });
process.exit(summary.verified === senders && peakMiB <= BOUND_MIB ? 0 : 1);

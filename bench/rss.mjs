// Receiver peak RSS while receiving a 4 GiB file: the node runs as `longhaul serve` under
// /usr/bin/time -v, the sender as `longhaul send` under /usr/bin/time -v too. The bound to meet
// is the node's pool size + 64 MiB. An idle node (started and stopped) gives Node.js's own
// baseline in the same run.
// With `--files N` it also sends a tree of N small files (0-8 KiB, 200 to a directory, N rounded
// up to a multiple of 200) and reports what each file of a transfer costs in memory on both
// ends: the content index and the per-file state grow with the file count (the pool does not),
// measured against an idle node and against a sender of one small file in the same run.
//   node bench/rss.mjs [--gib 4] [--files N]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { benchOptions, bigFile, tree } from './data.mjs';
import { markDeleted } from './workloads.mjs';

const args = benchOptions(import.meta.filename, { gib: { type: 'string', default: '4' }, files: { type: 'string', default: '0' } });
const gib = Number(args.gib);
const files = Number(args.files);
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
bigFile(file, gib * 2 ** 30);

/** Peak RSS (MiB) of `longhaul send SRC` to a node on `port`, and its JSON summary. */
function send(src, port) {
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, CLI, 'send', src, `127.0.0.1:${port}`, '--json'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`send failed: ${r.stderr}`);
  return { rss: maxRss(r.stderr), summary: JSON.parse(r.stdout.trim().split('\n').at(-1)) };
}

const idle = await node(join(work, 'idle-root'), async () => {});
let sendRss = NaN;
let summary;
const busy = await node(join(work, 'root'), async (port) => {
  ({ rss: sendRss, summary } = send(file, port));
});
rmSync(file);

let perFile;
if (files > 0) {
  const src = join(work, 'tree');
  const count = Math.ceil(files / 200) * 200; // what tree() makes
  tree(src, count);
  const one = join(work, 'one.txt');
  writeFileSync(one, 'one small file\n');
  let oneRss = NaN;
  let treeRss = NaN;
  let treeSummary;
  const treeNode = await node(join(work, 'tree-root'), async (port) => {
    oneRss = send(one, port).rss;
    ({ rss: treeRss, summary: treeSummary } = send(src, port));
  });
  if (treeSummary.files !== count) throw new Error(`sent ${treeSummary.files} files, not ${count}`);
  perFile = {
    files: count,
    receivingNodeMiB: Math.round(treeNode),
    senderOneFileMiB: Math.round(oneRss),
    senderMiB: Math.round(treeRss),
    nodeBytesPerFile: Math.round(((treeNode - idle) * 2 ** 20) / count),
    senderBytesPerFile: Math.round(((treeRss - oneRss) * 2 ** 20) / count),
    filesPerSec: Math.round(count / treeSummary.seconds),
  };
}
rmSync(work, { recursive: true, force: true });
if (files > 50000) markDeleted();
const rows = {
  file: `${gib} GiB`,
  poolMiB: POOL_MIB,
  boundMiB: POOL_MIB + 64,
  idleNodeMiB: Math.round(idle),
  receivingNodeMiB: Math.round(busy),
  senderMiB: Math.round(sendRss),
  MiBps: Math.round(summary.bytes / summary.seconds / 2 ** 20),
  withinBound: busy < POOL_MIB + 64,
  ...(perFile && { perFile }),
};
console.log(JSON.stringify(rows, null, 2));
process.exit(rows.withinBound ? 0 : 1);

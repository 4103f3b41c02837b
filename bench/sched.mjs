// Schedulers against each other: pipelined (pinned), adaptive (pinned), pipelined unpinned,
// auto (the default), and a grid of hand-tuned pipelined thread splits, on
//   (a) a page-cached 1 GiB file,
//   (b) the same file dropped from the page cache before each run (posix_fadvise DONTNEED, via
//       `dd iflag=nocache count=0`),
//   (c) the page-cached file with a BLAKE3 of every block (CPU-heavy processing).
// Node and sender run in this process over loopback; CPU seconds are both ends together
// (process.cpuUsage counts every thread). Medians of --runs runs (7 unless told), interleaved
// across the configurations, after one untimed warm-up send per workload.
//   node bench/sched.mjs [--quick] [--runs N] [--out FILE]
import { execSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

import { send, serve } from '../dist/index.js';
import { benchOptions } from './data.mjs';

const args = benchOptions(import.meta.filename, { quick: { type: 'boolean' }, runs: { type: 'string' }, out: { type: 'string' } });
const { quick, out } = args;
const runs = Number(args.runs ?? (quick ? 3 : 7));
const size = quick ? 256 << 20 : 1 << 30;
const GiB = 1 << 30;

const work = mkdtempSync(join(tmpdir(), 'longhaul-sched-'));
const file = join(work, 'src', 'data.bin');
mkdirSync(join(work, 'src'));
const buf = Buffer.allocUnsafe(16 << 20);
const fd = openSync(file, 'w');
for (let done = 0; done < size; done += buf.length) writeSync(fd, randomFillSync(buf));
closeSync(fd);
execSync('sync');

const dropCache = () => execSync(`dd if=${file} iflag=nocache count=0 status=none`);
const warmCache = () => execSync(`cat ${file} > /dev/null`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const configs = [
  { name: 'auto (default)', opts: {} },
  { name: 'pipelined, pinned', opts: { scheduler: 'pipelined', pin: 'always' } },
  { name: 'adaptive, pinned', opts: { scheduler: 'adaptive', pin: 'always' } },
  { name: 'pipelined, unpinned', opts: { scheduler: 'pipelined', pin: 'never' } },
  { name: 'adaptive, unpinned', opts: { scheduler: 'adaptive', pin: 'never' } },
];
const grid = [];
for (const readers of [1, 2, 4]) for (const processors of [1, 2, 4]) grid.push({ name: `pipelined r${readers} p${processors}`, grid: true, opts: { scheduler: 'pipelined', readers, processors } });

const workloads = [
  { name: 'page-cached', before: warmCache, opts: {} },
  { name: 'uncached', before: dropCache, opts: {} },
  { name: 'BLAKE3 every block', before: warmCache, opts: { digest: 'blake3' } },
];

const node = await serve({ root: join(work, 'root'), auth: false });
const rows = [];
let n = 0;
const once = async (w, c) => {
  w.before();
  execSync('sync');
  const dest = `r${n++}`;
  const c0 = process.cpuUsage();
  const s = await send(file, `${node.url}/${dest}`, { ...w.opts, ...c.opts });
  const cu = process.cpuUsage(c0);
  rmSync(join(node.root, dest), { recursive: true, force: true });
  return { secs: s.seconds, cpu: (cu.user + cu.system) / 1e6, used: s.scheduler.used };
};
for (const w of workloads) {
  const all = [...configs, ...grid];
  // One send before timing anything, so no configuration pays the workload's first run; then
  // the runs interleaved (run 1 of every configuration, then run 2, ...), so a slow spell of
  // the machine falls on all of them alike rather than on the ones timed during it.
  await once(w, configs[0]);
  const got = all.map(() => []);
  for (let i = 0; i < runs; i++) for (const [k, c] of all.entries()) got[k].push(await once(w, c));
  for (const [k, c] of all.entries()) {
    const secs = got[k].map((g) => g.secs);
    const cpu = got[k].map((g) => g.cpu);
    const used = [...new Set(got[k].map((g) => g.used))].join('/');
    const row = { workload: w.name, config: c.name, grid: Boolean(c.grid), used, MiBps: size / median(secs) / 2 ** 20, cpuSecPerGiB: median(cpu) / (size / GiB), seconds: secs };
    rows.push(row);
    console.log(`${w.name.padEnd(20)} ${c.name.padEnd(22)} ${row.MiBps.toFixed(0).padStart(6)} MiB/s  cpu ${row.cpuSecPerGiB.toFixed(2)} s/GiB  (ran ${used})`);
  }
}
await node.close();
rmSync(work, { recursive: true, force: true });

// Targets: auto within 5% of the best of pipelined / adaptive / unpinned; adaptive within 10%
// of the best hand-tuned pipelined split.
const verdicts = [];
for (const w of workloads) {
  const get = (name) => rows.find((r) => r.workload === w.name && r.config === name);
  const best3 = Math.max(...['pipelined, pinned', 'adaptive, pinned', 'pipelined, unpinned'].map((k) => get(k).MiBps));
  const bestGrid = rows.filter((r) => r.workload === w.name && r.grid).sort((a, b) => b.MiBps - a.MiBps)[0];
  const auto = get('auto (default)').MiBps;
  const adaptive = Math.max(get('adaptive, pinned').MiBps, get('adaptive, unpinned').MiBps);
  verdicts.push({
    workload: w.name,
    autoVsBest: auto / best3,
    autoOk: auto >= 0.95 * best3,
    adaptiveVsBestSplit: adaptive / bestGrid.MiBps,
    bestSplit: bestGrid.config,
    adaptiveOk: adaptive >= 0.9 * bestGrid.MiBps,
  });
}
for (const v of verdicts) {
  console.log(
    `${v.workload.padEnd(20)} auto/best ${v.autoVsBest.toFixed(2)} ${v.autoOk ? 'ok' : 'MISSED'}; adaptive/best split (${v.bestSplit}) ${v.adaptiveVsBestSplit.toFixed(2)} ${v.adaptiveOk ? 'ok' : 'MISSED'}`,
  );
}
const result = { machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, size, runs, rows, verdicts };
if (out) writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);

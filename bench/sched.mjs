// Schedulers against each other: pipelined (pinned), adaptive (pinned), pipelined unpinned,
// auto (the default), and a grid of hand-tuned pipelined thread splits, on
//   (a) a page-cached 1 GiB file,
//   (b) the same file dropped from the page cache before each run (posix_fadvise DONTNEED, via
//       `dd iflag=nocache count=0`),
//   (c) the page-cached file with a BLAKE3 of every block (CPU-heavy processing).
// Node and sender run in this process over loopback; CPU seconds are both ends together
// (process.cpuUsage counts every thread). Runs are interleaved across the configurations (run 1
// of each, then run 2, ...) after one untimed warm-up send per workload.
//
// Two passes per workload, so that "the best" is not the luckiest of many noisy medians:
// tuning (--tune-runs runs, 3 unless told, of every configuration and every split) picks the
// best hand-tuned split and the best of pipelined pinned / adaptive pinned / unpinned, as a
// user tuning by hand would; evaluation (--runs runs, 7 unless told) then times auto, each
// named configuration and the chosen split afresh, and the targets are judged on those runs
// alone: auto within 5% of the configuration tuning chose, adaptive (the variant tuning
// chose) within 10% of the chosen split. Each ratio is computed two ways: paired, the median
// over the evaluation's rounds of the two configurations' rate ratio in that round (a slow
// spell of the VM that slows every configuration of its round alike cancels out), and apart,
// the ratio of the two medians; a target counts as met only where both say so. `auto` against
// the fastest of the three in the evaluation itself is reported beside them. Before each run
// (but not with --quick) the bench waits until the guest has handed back to the host what the
// run before freed (bench/data.mjs, hostMemorySettled), as compare.mjs does. The host's steal
// time (/proc/stat) during each pass, and the free memory handed back to the host during each
// run, are recorded: on a shared VM both move every figure.
//   node bench/sched.mjs [--quick] [--runs N] [--tune-runs N] [--out FILE]
import { execSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

import { send, serve } from '../dist/sdk/index.js';
import { benchOptions, cpuTimes, hostMemorySettled, hostReturnedMiB, median } from './data.mjs';

const args = benchOptions(import.meta.filename, { quick: { type: 'boolean' }, runs: { type: 'string' }, 'tune-runs': { type: 'string' }, out: { type: 'string' } });
const { quick, out } = args;
const runs = Number(args.runs ?? (quick ? 3 : 7));
const tuneRuns = Number(args['tune-runs'] ?? (quick ? 2 : 3));
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

const AUTO = { name: 'auto (default)', opts: {} };
const THREE = ['pipelined, pinned', 'adaptive, pinned', 'pipelined, unpinned'];
const ADAPTIVE = ['adaptive, pinned', 'adaptive, unpinned'];
const configs = [
  AUTO,
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
const passes = [];
let n = 0;
const once = async (w, c) => {
  w.before();
  execSync('sync');
  // The destination of the run before was deleted, and "uncached" has just dropped the source:
  // let that memory go back to the host now rather than during this run (not in a --quick
  // smoke run, where the waits would be most of its time).
  if (!quick) await hostMemorySettled();
  const dest = `r${n++}`;
  const c0 = process.cpuUsage();
  const r0 = hostReturnedMiB();
  const s = await send(file, `${node.url}/${dest}`, { ...w.opts, ...c.opts });
  const cu = process.cpuUsage(c0);
  const returned = hostReturnedMiB() - r0;
  rmSync(join(node.root, dest), { recursive: true, force: true });
  return { secs: s.seconds, cpu: (cu.user + cu.system) / 1e6, used: s.scheduler.used, returned };
};
// `count` interleaved runs of every configuration in `list`; one row per configuration.
const pass = async (w, phase, list, count) => {
  const got = list.map(() => []);
  const { busy: busy0, steal: steal0 } = cpuTimes();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) for (const [k, c] of list.entries()) got[k].push(await once(w, c));
  const { busy: busy1, steal: steal1 } = cpuTimes();
  const wall = (performance.now() - t0) / 1000;
  passes.push({ workload: w.name, phase, wallSeconds: wall, busyCpuSeconds: busy1 - busy0, stealCpuSeconds: steal1 - steal0 });
  console.log(`${w.name}: ${phase} pass, ${count} runs of ${list.length}: ${wall.toFixed(0)} s; the host stole ${(steal1 - steal0).toFixed(1)} CPU s of ${(cpus().length * wall).toFixed(0)} (${cpus().length} CPUs × wall)`);
  return list.map((c, k) => {
    const secs = got[k].map((g) => g.secs);
    const cpu = got[k].map((g) => g.cpu);
    const used = [...new Set(got[k].map((g) => g.used))].join('/');
    // MiB of free memory handed back to the host during each run (bench/hostmem.mjs).
    const returnedMiB = got[k].map((g) => Math.round(g.returned));
    const row = { workload: w.name, phase, config: c.name, grid: Boolean(c.grid), used, MiBps: size / median(secs) / 2 ** 20, cpuSecPerGiB: median(cpu) / (size / GiB), seconds: secs, returnedMiB };
    rows.push(row);
    console.log(`${w.name.padEnd(20)} ${phase.padEnd(6)} ${c.name.padEnd(22)} ${row.MiBps.toFixed(0).padStart(6)} MiB/s  cpu ${row.cpuSecPerGiB.toFixed(2)} s/GiB  (ran ${used})`);
    return row;
  });
};
const best = (list) => [...list].sort((a, b) => b.MiBps - a.MiBps)[0];
const verdicts = [];
for (const w of workloads) {
  // One send before timing anything, so no configuration pays the workload's first run.
  await once(w, AUTO);
  const tuned = await pass(w, 'tune', [...configs.slice(1), ...grid], tuneRuns);
  const split = grid.find((g) => g.name === best(tuned.filter((r) => r.grid)).config);
  const bestOfThree = best(tuned.filter((r) => THREE.includes(r.config))).config;
  const adaptiveTuned = best(tuned.filter((r) => ADAPTIVE.includes(r.config))).config;
  const evaluated = await pass(w, 'eval', [...configs, { ...split, name: `${split.name} (tuned)` }], runs);
  const row = (name) => evaluated.find((r) => r.config === name);
  const get = (name) => row(name).MiBps;
  // Rate of `a` over rate of `b`: the median of the per-round ratios (the runs of round i were
  // made one after the other), and the ratio of the two medians taken apart.
  const paired = (a, b) => median(row(a).seconds.map((s, i) => row(b).seconds[i] / s));
  const apart = (a, b) => get(a) / get(b);
  const splitName = `${split.name} (tuned)`;
  const sameRunBest = THREE.reduce((x, y) => (get(y) > get(x) ? y : x));
  const autoVsTuned = paired(AUTO.name, bestOfThree);
  const adaptiveVsTunedSplit = paired(adaptiveTuned, splitName);
  verdicts.push({
    workload: w.name,
    tunedBest: bestOfThree,
    autoVsTuned,
    autoVsTunedApart: apart(AUTO.name, bestOfThree),
    autoOk: autoVsTuned >= 0.95 && apart(AUTO.name, bestOfThree) >= 0.95,
    autoVsSameRunBest: paired(AUTO.name, sameRunBest),
    tunedAdaptive: adaptiveTuned,
    tunedSplit: split.name,
    adaptiveVsTunedSplit,
    adaptiveVsTunedSplitApart: apart(adaptiveTuned, splitName),
    adaptiveOk: adaptiveVsTunedSplit >= 0.9 && apart(adaptiveTuned, splitName) >= 0.9,
  });
}
await node.close();
rmSync(work, { recursive: true, force: true });

for (const v of verdicts) {
  console.log(
    `${v.workload.padEnd(20)} auto/${v.tunedBest} (tuned) ${v.autoVsTuned.toFixed(3)} ${v.autoOk ? 'ok' : 'MISSED'} (medians apart ${v.autoVsTunedApart.toFixed(3)}, same-run best ${v.autoVsSameRunBest.toFixed(3)}); ` +
      `${v.tunedAdaptive}/${v.tunedSplit} (tuned) ${v.adaptiveVsTunedSplit.toFixed(3)} ${v.adaptiveOk ? 'ok' : 'MISSED'} (medians apart ${v.adaptiveVsTunedSplitApart.toFixed(3)})`,
  );
}
const result = { machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, size, runs, tuneRuns, passes, rows, verdicts };
if (out) writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);

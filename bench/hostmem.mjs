// Memory the host takes back: how much of the spread between runs on this VM it explains.
//
// These machines are KVM guests whose free memory is handed back to the host as it is freed
// (virtio-balloon free page reporting; `page_reporting.page_reporting_order` on the kernel's
// command line). A page handed back costs a host fault the next time the guest touches it, and
// a transfer touches a lot of new memory: every page the node writes into the page cache (and,
// from an uncached source, every page the sender reads) is a page the kernel allocates.
//   1. first touch: fills a fresh 1 GiB buffer twice, three times, with and without a pause
//      before (a pause gives the reporting time to hand back what the last round freed);
//   2. the same push repeated: a page-cached 1 GiB file sent to an in-process node with the
//      default settings `--runs` times (8 unless told), the destination deleted after each; per
//      run the wall time, both ends' CPU, the MiB handed back to the host during the run
//      (`reported_kib` of the page_reporting module, where the kernel has it) and the steal.
// Changes nothing on the machine; writes `--out FILE` (JSON) when asked.
//   node bench/hostmem.mjs [--runs N] [--out FILE]
import { execSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { send, serve } from '../dist/sdk/index.js';
import { benchOptions, bigFile, cpuTimes, hostReturnedMiB, median } from './data.mjs';

const args = benchOptions(import.meta.filename, { runs: { type: 'string' }, out: { type: 'string' } });
const runs = Number(args.runs ?? 8);
const GiB = 1 << 30;
const REPORTING = '/sys/module/page_reporting/parameters/page_reporting_order';

// ---- 1. first touch ------------------------------------------------------------------------------
const touch = [];
for (const pauseS of [0, 3]) {
  for (let round = 0; round < 3; round++) {
    await sleep(pauseS * 1000);
    const mem = new Uint8Array(new ArrayBuffer(GiB)); // zero pages until written
    let t = performance.now();
    mem.fill(1);
    const first = performance.now() - t;
    t = performance.now();
    mem.fill(2);
    const second = performance.now() - t;
    touch.push({ pauseS, round, firstMiBps: 1024 / (first / 1000), secondMiBps: 1024 / (second / 1000) });
    console.log(`first touch after ${pauseS} s: ${(1024 / (first / 1000)).toFixed(0)} MiB/s, second touch ${(1024 / (second / 1000)).toFixed(0)} MiB/s`);
  }
}

// ---- 2. the same push, again and again -----------------------------------------------------------
const work = mkdtempSync(join(tmpdir(), 'longhaul-hostmem-'));
const file = join(work, 'data.bin');
bigFile(file, GiB);
execSync('sync');
const node = await serve({ root: join(work, 'root'), auth: false });
const pushes = [];
for (let i = 0; i < runs; i++) {
  execSync(`cat ${file} > /dev/null; sync`);
  const r0 = hostReturnedMiB();
  const { steal: s0 } = cpuTimes();
  const c0 = process.cpuUsage();
  const s = await send(file, `${node.url}/r${i}`);
  const c = process.cpuUsage(c0);
  const returned = hostReturnedMiB() - r0;
  const steal = cpuTimes().steal - s0;
  rmSync(join(node.root, `r${i}`), { recursive: true, force: true });
  const row = { seconds: s.seconds, cpuSeconds: (c.user + c.system) / 1e6, returnedMiB: returned, stealSeconds: steal };
  pushes.push(row);
  console.log(`push ${i + 1}: ${s.seconds.toFixed(2)} s, CPU ${row.cpuSeconds.toFixed(2)} s, handed back to the host during it ${returned.toFixed(0)} MiB, steal ${steal.toFixed(2)} CPU s`);
}
await node.close();
rmSync(work, { recursive: true, force: true });

const quiet = pushes.filter((p) => p.returnedMiB === 0);
const busy = pushes.filter((p) => p.returnedMiB > 0);
const m = (xs, k) => (xs.length ? median(xs.map((x) => x[k])).toFixed(2) : '–');
console.log(`pushes with nothing handed back: ${quiet.length}, median ${m(quiet, 'seconds')} s and ${m(quiet, 'cpuSeconds')} CPU s`);
console.log(`pushes while memory was handed back: ${busy.length}, median ${m(busy, 'seconds')} s and ${m(busy, 'cpuSeconds')} CPU s`);
const machine = {
  cpus: cpus().length,
  model: cpus()[0]?.model,
  node: process.version,
  pageReportingOrder: existsSync(REPORTING) ? readFileSync(REPORTING, 'utf8').trim() : null,
};
if (args.out) writeFileSync(args.out, `${JSON.stringify({ machine, touch, pushes }, null, 2)}\n`);

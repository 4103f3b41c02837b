// Chooses the default stream count: sends a 1 GiB page-cached file and a 20,000-file tree over
// loopback with 1, 2, 4 and 8 streams (node and sender in this process), several runs each,
// and reports the median rate and the CPU seconds per GiB of both ends together. `cp` and
// `tar | tar` of the same data in the same run give the local-copy baseline.
//   node bench/streams.mjs [--runs 3] [--out bench/results/streams.json]
import { execFileSync, execSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

import { send, serve } from '../dist/sdk/index.js';
import { benchOptions, bigFile, median, tree } from './data.mjs';

const args = benchOptions(import.meta.filename, { runs: { type: 'string', default: '3' }, out: { type: 'string' } });
const runs = Number(args.runs);
const { out } = args;
const work = mkdtempSync(join(tmpdir(), 'longhaul-bench-'));
const GiB = 1 << 30;

function timed(fn) {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  return Promise.resolve(fn()).then((r) => {
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    return { secs, cpu: (c.user + c.system) / 1e6, r };
  });
}

mkdirSync(join(work, 'big'));
bigFile(join(work, 'big', 'file.bin'), GiB);
mkdirSync(join(work, 'tree'));
tree(join(work, 'tree', 'small'), 20_000);
const treeBytes = Number(execSync(`du -sb --apparent-size ${join(work, 'tree')}`).toString().split('\t')[0]);
execSync(`cat ${join(work, 'big', 'file.bin')} > /dev/null; tar -cf - -C ${join(work, 'tree')} . > /dev/null`);

const node = await serve({ root: join(work, 'root'), auth: false });
const results = { machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, runs, rows: [] };
let n = 0;
for (const [name, src, bytes, files] of [
  ['1 GiB file', join(work, 'big', 'file.bin'), GiB, 1],
  ['20,000 files', join(work, 'tree', 'small'), treeBytes, 20_000],
]) {
  const base = [];
  for (let i = 0; i < runs; i++) {
    const dest = join(work, `base-${n++}`);
    mkdirSync(dest);
    const cmd = files === 1 ? `cp ${src} ${dest}/` : `tar -cf - -C ${join(src, '..')} small | tar -xf - -C ${dest}`;
    const t0 = process.hrtime.bigint();
    execSync(cmd, { shell: '/bin/bash' });
    base.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  results.rows.push({ workload: name, tool: files === 1 ? 'cp' : 'tar | tar', MiBps: bytes / median(base) / 2 ** 20, filesPerSec: files / median(base) });
  for (const streams of [1, 2, 4, 8]) {
    const secs = [];
    const cpu = [];
    for (let i = 0; i < runs; i++) {
      const t = await timed(() => send(src, `${node.url}/s${n++}`, { streams }));
      secs.push(t.secs);
      cpu.push(t.cpu);
    }
    results.rows.push({
      workload: name,
      tool: `longhaul --streams ${streams}`,
      MiBps: bytes / median(secs) / 2 ** 20,
      filesPerSec: files / median(secs),
      cpuSecPerGiB: median(cpu) / (bytes / GiB),
      minSec: Math.min(...secs),
      maxSec: Math.max(...secs),
    });
  }
}
await node.close();
for (const r of results.rows) {
  console.log(
    `${r.workload.padEnd(13)} ${r.tool.padEnd(22)} ${r.MiBps.toFixed(0).padStart(6)} MiB/s ${r.filesPerSec.toFixed(0).padStart(8)} files/s` +
      (r.cpuSecPerGiB !== undefined ? `  cpu ${r.cpuSecPerGiB.toFixed(2)} s/GiB  (min ${r.minSec.toFixed(2)} s, max ${r.maxSec.toFixed(2)} s)` : ''),
  );
}
if (out) writeFileSync(out, JSON.stringify(results, null, 2));
// Delete once, at the end (ext4 without a journal is slow to create files after deletes).
rmSync(work, { recursive: true, force: true });

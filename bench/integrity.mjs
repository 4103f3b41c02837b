// The cost of integrity, durability and privacy options against the defaults, in the same run:
// a 1 GiB page-cached file and a 20,000-file tree sent over loopback (node and sender in this
// process) with verify block (the default) and full, with the node's fsync none (the default),
// file and end, and through a TLS node (a pinned self-signed certificate). Runs are interleaved; each goes to a fresh destination; CPU is both ends together.
//   node bench/integrity.mjs [--runs 3] [--out bench/results/integrity.json]
import { execSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

import { send, serve } from '../dist/sdk/index.js';
import { benchOptions, bigFile, median, tree } from './data.mjs';

const args = benchOptions(import.meta.filename, { runs: { type: 'string', default: '3' }, out: { type: 'string' } });
const runs = Number(args.runs);
const { out } = args;
const work = mkdtempSync(join(tmpdir(), 'longhaul-bench-integrity-'));
const GiB = 1 << 30;

mkdirSync(join(work, 'big'));
bigFile(join(work, 'big', 'file.bin'), GiB);
mkdirSync(join(work, 'tree'));
tree(join(work, 'tree', 'small'), 20_000);
const treeBytes = Number(execSync(`du -sb --apparent-size ${join(work, 'tree', 'small')}`).toString().split('\t')[0]);
execSync(`cat ${join(work, 'big', 'file.bin')} > /dev/null; tar -cf - -C ${join(work, 'tree')} . > /dev/null`);

const nodes = {};
for (const fsync of ['none', 'file', 'end']) nodes[fsync] = await serve({ root: join(work, `root-${fsync}`), auth: false, fsync });
nodes.tls = await serve({ root: join(work, 'root-tls'), auth: false, tls: true });
const configs = [
  { name: 'defaults (verify block, fsync none)', verify: 'block', fsync: 'none' },
  { name: 'verify full', verify: 'full', fsync: 'none' },
  { name: 'fsync file', verify: 'block', fsync: 'file' },
  { name: 'fsync end', verify: 'block', fsync: 'end' },
  { name: 'TLS (pinned, TLS 1.3)', verify: 'block', fsync: 'none', node: 'tls' },
];
const workloads = [
  { name: '1 GiB file', src: join(work, 'big', 'file.bin'), bytes: GiB, files: 1 },
  { name: '20,000 files', src: join(work, 'tree', 'small'), bytes: treeBytes, files: 20_000 },
];
const samples = new Map();
let n = 0;
for (let r = 0; r < runs; r++) {
  for (const w of workloads) {
    for (const c of configs) {
      // Dirty pages of the previous run are written back first, so that each fsync pays for its own.
      execSync('sync');
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const node = nodes[c.node ?? c.fsync];
      const s = await send(w.src, `${node.url}/r${n++}`, { verify: c.verify, tlsPin: node.tlsFingerprint });
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const cu = process.cpuUsage(c0);
      if (c.verify === 'full' && s.verifiedFiles !== w.files) throw new Error(`verified ${s.verifiedFiles} of ${w.files} files`);
      const key = `${w.name}|${c.name}`;
      if (!samples.has(key)) samples.set(key, { secs: [], cpu: [] });
      samples.get(key).secs.push(secs);
      samples.get(key).cpu.push((cu.user + cu.system) / 1e6);
    }
  }
}
for (const node of Object.values(nodes)) await node.close();

const results = { machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, runs, rows: [] };
for (const w of workloads) {
  const base = median(samples.get(`${w.name}|${configs[0].name}`).secs);
  for (const c of configs) {
    const { secs, cpu } = samples.get(`${w.name}|${c.name}`);
    results.rows.push({
      workload: w.name,
      config: c.name,
      MiBps: w.bytes / median(secs) / 2 ** 20,
      filesPerSec: w.files / median(secs),
      seconds: median(secs),
      minSec: Math.min(...secs),
      maxSec: Math.max(...secs),
      cpuSecPerGiB: median(cpu) / (w.bytes / GiB),
      vsDefaults: median(secs) / base,
    });
  }
}
for (const r of results.rows) {
  console.log(
    `${r.workload.padEnd(13)} ${r.config.padEnd(36)} ${r.seconds.toFixed(2).padStart(6)} s (${r.minSec.toFixed(2)}-${r.maxSec.toFixed(2)})` +
      ` ${r.MiBps.toFixed(0).padStart(6)} MiB/s ${r.filesPerSec.toFixed(0).padStart(7)} files/s  cpu ${r.cpuSecPerGiB.toFixed(2)} s/GiB  x${r.vsDefaults.toFixed(2)} time`,
  );
}
if (out) writeFileSync(out, JSON.stringify(results, null, 2));
// Delete once, at the end (ext4 without a journal is slow to create files after deletes).
rmSync(work, { recursive: true, force: true });

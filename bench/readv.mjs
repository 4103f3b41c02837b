// readv: N scattered segments in one request against N single reads on one connection, and
// against reading the same bytes locally (one pread per segment, fs.readSync), for N = 16,
// 256 and 1,024 over loopback. 100 page-cached files of 1 MiB; 4 KiB segments at random
// offsets in random files. Prints a table and writes JSON.
//   node bench/readv.mjs [--runs 9] [--size 4096] [--out bench/results/readv.json]
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

import { connect, serve } from '../dist/sdk/index.js';
import { benchOptions } from './data.mjs';

const args = benchOptions(import.meta.filename, { runs: { type: 'string', default: '9' }, size: { type: 'string', default: '4096' }, out: { type: 'string' } });
const runs = Number(args.runs);
const size = Number(args.size);
const { out } = args;
const work = mkdtempSync(join(tmpdir(), 'longhaul-readv-'));
const FILES = 100;

mkdirSync(join(work, 'root', 'data'), { recursive: true });
for (let i = 0; i < FILES; i++) writeFileSync(join(work, 'root', 'data', `f${i}`), randomFillSync(Buffer.allocUnsafe(1 << 20)));
// Page-cached: every file read once.
for (let i = 0; i < FILES; i++) readFileSync(join(work, 'root', 'data', `f${i}`));

let seed = 12345;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed;
};
const segmentsOf = (n) =>
  Array.from({ length: n }, () => ({ path: `data/f${rand() % FILES}`, offset: rand() % ((1 << 20) - size), length: size }));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function time(fn, n) {
  const xs = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

const node = await serve({ root: join(work, 'root'), auth: false });
const c = await connect(node.url);
const fds = new Map();
const fdOf = (p) => {
  if (!fds.has(p)) fds.set(p, openSync(join(work, 'root', p), 'r'));
  return fds.get(p);
};
const local = (segs) =>
  segs.map((s) => {
    const b = Buffer.allocUnsafe(s.length);
    readSync(fdOf(s.path), b, 0, s.length, s.offset);
    return b;
  });

const rows = [];
for (const n of [16, 256, 1024]) {
  const segs = segmentsOf(n);
  // Checked once: the vectored answer is the local bytes.
  const want = local(segs);
  const got = await c.readv(segs);
  if (!got.every((b, i) => b.equals(want[i]))) throw new Error(`readv of ${n} segments differs from the local bytes`);
  await c.readv(segs); // warm
  const vectored = await time(() => c.readv(segs), runs);
  const single = await time(async () => {
    for (const s of segs) await c.read(s.path, s.offset, s.length);
  }, Math.max(3, Math.ceil(runs / 3)));
  const localT = await time(() => local(segs), runs);
  rows.push({
    segments: n,
    segmentBytes: size,
    messages: { vectored: 2, single: 2 * n },
    vectoredMs: vectored,
    singleMs: single,
    localPreadMs: localT,
    speedupOverSingle: single.median / vectored.median,
    ratioToLocal: vectored.median / localT.median,
  });
}
const stats = await c.stats();
c.close();
await node.close();
for (const fd of fds.values()) closeSync(fd);
rmSync(work, { recursive: true, force: true });

const f = (x) => x.toFixed(2);
console.log(`readv over 127.0.0.1, ${size}-byte segments in ${FILES} page-cached files, medians of ${runs} runs (${cpus().length} CPUs)`);
console.log('| N | messages (readv / single) | readv ms | N single reads ms | local pread ms | readv vs single | readv / local |');
console.log('| ---: | --- | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows)
  console.log(
    `| ${r.segments} | 2 / ${r.messages.single} | ${f(r.vectoredMs.median)} | ${f(r.singleMs.median)} | ${f(r.localPreadMs.median)} | ${r.speedupOverSingle.toFixed(1)}x | ${r.ratioToLocal.toFixed(2)}x |`,
  );
console.log(`node reads after coalescing: ${stats.readv.reads} for ${stats.readv.segments} segments`);
if (out) writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), cpus: cpus().length, runs, rows }, null, 1)}\n`);

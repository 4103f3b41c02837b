// Chooses the default block size. A node started with the CLI (`longhaul serve`), and `longhaul
// send` of each workload with each `--block-size`, the sizes interleaved by round (their order
// rotating), a wait for the host to take back what the run before freed and `sync` before
// each send, a fresh destination per send (moved aside, deleted at the
// end: see bench/compare.mjs on ext4). Measured: the wall time of the send command, the
// node's CPU from /proc/PID/stat, the sender's from /usr/bin/time. Each size's first copy is
// compared with the source. Workloads are `npm run bench`'s (bench/workloads.mjs).
//   node bench/blocksize.mjs [--runs 5] [--sizes 1M,4M] [--only BIG,LOSF,MIXED] [--out FILE]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { benchOptions, hostMemorySettled, median } from './data.mjs';
import { coolDown, markDeleted, readIntoCache, workloads } from './workloads.mjs';

const args = benchOptions(import.meta.filename, {
  runs: { type: 'string', default: '5' },
  sizes: { type: 'string', default: '1M,4M' },
  only: { type: 'string', default: 'BIG,LOSF,MIXED' },
  out: { type: 'string' },
});
const RUNS = Number(args.runs);
const SIZES = args.sizes.split(',');
const ONLY = args.only.split(',');
const OUT = args.out;
const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');
const log = (...a) => console.error(...a);
const sh = (cmd) => spawnSync('bash', ['-c', cmd], { encoding: 'utf8' });
const bytesOf = (s) => Number.parseInt(s, 10) * { K: 2 ** 10, M: 2 ** 20 }[s.at(-1)];

// A recent bench deleted its trees: creating files would measure ext4's slow spell
// (workloads.mjs). Before the sources exist, so nothing needs reading back.
await coolDown(log);
const work = mkdtempSync(join(tmpdir(), 'longhaul-blocksize-'));
const W = workloads(false);
const root = join(work, 'root');
const trash = join(root, 'trash');
mkdirSync(trash, { recursive: true });

const node = spawn('node', [CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--no-auth', '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
const port = await new Promise((resolve, reject) => {
  createInterface({ input: node.stdout }).on('line', (l) => {
    const m = JSON.parse(l);
    if (m.type === 'listening') resolve(m.port);
  });
  node.on('exit', (c) => reject(new Error(`the node exited (${c})`)));
});
const nodeCpu = () => {
  const f = readFileSync(`/proc/${node.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
};

const result = { date: new Date().toISOString().slice(0, 10), machine: `${cpus().length} x ${cpus()[0]?.model}`, node: process.version, runs: RUNS, workloads: [] };
try {
  for (const name of ['BIG', 'LOSF', 'MIXED'].filter((w) => ONLY.includes(w))) {
    log(`generating ${name}: ${W[name].what}`);
    mkdirSync(join(work, 'src', name), { recursive: true });
    const src = W[name].make(join(work, 'src', name));
    const rows = SIZES.map((size) => ({ size, seconds: [], nodeCpu: [], senderCpu: [] }));
    for (let r = 0; r < RUNS; r++) {
      for (let k = 0; k < rows.length; k++) {
        const row = rows[(k + r) % rows.length];
        const dest = `${name}-${row.size}-${r}`;
        // Timed page-cached: the runs before wrote GiBs that can push the source out (compare.mjs).
        readIntoCache(src);
        // What the run before freed goes back to the host first (bench/data.mjs).
        await hostMemorySettled();
        sh('sync');
        const c0 = nodeCpu();
        const t0 = process.hrtime.bigint();
        const timeFile = join(work, 'time.txt');
        const sent = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, 'node', CLI, 'send', src, `127.0.0.1:${port}/${dest}`, '-q', '--block-size', String(bytesOf(row.size))], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
        const secs = Number(process.hrtime.bigint() - t0) / 1e9;
        if (sent.status !== 0) throw new Error(`send ${dest} exited ${sent.status}: ${sent.stderr}`);
        row.seconds.push(secs);
        row.nodeCpu.push(nodeCpu() - c0);
        row.senderCpu.push(readFileSync(timeFile, 'utf8').trim().split(/\s+/).map(Number).reduce((a, b) => a + b, 0));
        const landed = join(root, dest, statSync(src).isFile() ? 'big.bin' : name.toLowerCase());
        if (r === 0 && sh(`diff -rq ${src} ${landed}`).status !== 0) throw new Error(`${dest} differs from the source`);
        // One file is deleted at once (one inode: no ext4 slow spell); trees are moved aside.
        if (statSync(src).isFile()) rmSync(join(root, dest), { recursive: true });
        else renameSync(join(root, dest), join(trash, dest));
        log(`${name} ${row.size} run ${r + 1}: ${secs.toFixed(2)} s`);
      }
    }
    result.workloads.push({ name, what: W[name].what, rows });
  }
} finally {
  node.kill('SIGTERM');
  log('deleting the work tree, directory by directory');
  for (const d of existsSync(trash) ? readdirSync(trash) : []) rmSync(join(trash, d), { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
  // One big file frees one inode: only the trees make ext4 slow to create files afterwards.
  if (ONLY.some((w) => w !== 'BIG')) markDeleted();
}

const f = (xs) => `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
console.log(`${result.date}, ${result.machine}, Node ${result.node}: \`node bench/blocksize.mjs ${process.argv.slice(2).join(' ')}\`\n`);
console.log('| workload | block size | seconds, median (min–max) | node CPU s | sender CPU s |');
console.log('| --- | --- | --- | --- | --- |');
for (const w of result.workloads) for (const r of w.rows) console.log(`| ${w.name} | ${r.size} | ${f(r.seconds)} | ${f(r.nodeCpu)} | ${f(r.senderCpu)} |`);
if (OUT) writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);

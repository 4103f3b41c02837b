// Many small files pushed to a node (issue 33): for 20,000 files and for --files N (default
// 2,000,000, the issue's figure), the peak RSS of the node and of the sender against the node's
// pool + 64 MiB, the summary's firstByteSeconds (from the start, scan included, to the first
// data byte on a data socket), scanSeconds, seconds and files/s. Issue 33 asks that both peaks
// stay within pool + 64 MiB and the first byte leave within 1 s whatever the file count; today
// the whole index is scanned and sent first, and this records how far from that we are.
//
// "Small files": 0-8 KiB (random bytes, 4 KiB on average), 200 to a directory (N rounded up to a
// multiple of 200), the shape of `rss --files`, so bytes per file compare with its figures.
// The 20,000-file row is also the LOSF row (files/s of a tree of that many small files).
//
// Peak RSS is /usr/bin/time -v's maximum resident set size. Baselines in the same run: an idle
// node (started and stopped) for the node, a sender of one small file for the sender; the table
// gives each peak and its growth over the baseline. The pool is the node's, read with
// `longhaul stats --json` (buffers x buffer size).
//
// The source trees are made on the ext4 disk under --dir and kept between runs (tree-N, with
// tree-N.json saying its shape: made again only when that differs; 2,000,000 files take ~2
// minutes to make). Each run's node root is a fresh directory under --dir (the same disk), and
// every root is deleted at the end, after all the measuring. That ext4 has no journal: for
// minutes after a mass delete, creating files is ~10x slower (bench/workloads.mjs), so a run
// soon after another bench's deletion is slowed where the node creates the files; the output
// says when that was the case.
//
//   node bench/scale.mjs [--files 2000000] [--small 20000] [--dir /var/tmp/longhaul-scale]
//                        [--out FILE.json] [--prepare]
// `--prepare` only makes the trees (to run outside the measurement lock, at low priority).
import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const REPO = join(import.meta.dirname, '..');
const CLI = join(REPO, 'dist', 'cli.js');
const MiB = 2 ** 20;
/** The tree's shape, as written to tree-N.json: a tree is reused only when this matches. */
export const SHAPE = { version: 1, perDir: 200, sizes: '0-8 KiB' };

/** What tree() makes of a file count: whole directories of 200. */
export const roundFiles = (n) => Math.ceil(n / SHAPE.perDir) * SHAPE.perDir;

/** Peak RSS in MiB from /usr/bin/time -v's report. */
export const maxRssMiB = (stderr) => Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)?.[1] ?? NaN) / 1024;

/** The last JSON line of a `send --json` (its summary). */
export function summaryOf(stdout) {
  const line = stdout.trim().split('\n').at(-1);
  const s = JSON.parse(line);
  if (s.type !== 'summary') throw new Error(`expected a summary, got ${line.slice(0, 200)}`);
  return s;
}

const f = (x, d = 0) => (x === undefined || x === null || Number.isNaN(x) ? 'n/a' : x.toFixed(d));
const grouped = (n) => n.toLocaleString('en-US');

/** One row of the table from a run's figures (MiB, seconds). */
export function row(r, base) {
  const bound = r.poolMiB + 64;
  return {
    files: r.files,
    scanSeconds: r.scanSeconds,
    firstByteSeconds: r.firstByteSeconds ?? null,
    seconds: r.seconds,
    filesPerSec: Math.round(r.files / r.seconds),
    nodeMiB: Math.round(r.nodeMiB),
    nodeOverIdleMiB: Math.round(r.nodeMiB - base.idleNodeMiB),
    senderMiB: Math.round(r.senderMiB),
    senderOverOneFileMiB: Math.round(r.senderMiB - base.oneFileSenderMiB),
    poolMiB: r.poolMiB,
    boundMiB: bound,
    nodeWithin: r.nodeMiB <= bound,
    senderWithin: r.senderMiB <= bound,
    firstByteUnder1s: r.firstByteSeconds !== undefined && r.firstByteSeconds !== null && r.firstByteSeconds < 1,
    nodeBytesPerFile: Math.round(((r.nodeMiB - base.idleNodeMiB) * MiB) / r.files),
    senderBytesPerFile: Math.round(((r.senderMiB - base.oneFileSenderMiB) * MiB) / r.files),
  };
}

/** The markdown table of the rows (as row() makes them), with the baselines under it. */
export function table(rows, base) {
  const yes = (b) => (b ? 'yes' : '**no**');
  return [
    '| files | scan s | first byte s | total s | files/s | node peak MiB (over idle) | sender peak MiB (over 1-file) | pool + 64 MiB | node within | sender within | first byte < 1 s |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${grouped(r.files)} | ${f(r.scanSeconds, 2)} | ${f(r.firstByteSeconds, 2)} | ${f(r.seconds, 2)} | ${grouped(r.filesPerSec)} | ${r.nodeMiB} (+${r.nodeOverIdleMiB}) | ${r.senderMiB} (+${r.senderOverOneFileMiB}) | ${r.boundMiB} | ${yes(r.nodeWithin)} | ${yes(r.senderWithin)} | ${yes(r.firstByteUnder1s)} |`,
    ),
    '',
    `Baselines in the same run: idle node ${Math.round(base.idleNodeMiB)} MiB, sender of one small file ${Math.round(base.oneFileSenderMiB)} MiB. Per file over them: ${rows.map((r) => `${grouped(r.files)} files: node ${r.nodeBytesPerFile} B, sender ${r.senderBytesPerFile} B`).join('; ')}.`,
  ].join('\n');
}

/** The source tree of `files` small files under `dir`, made unless one of the same shape is there. */
export function ensureTree(dir, files, log) {
  const path = join(dir, `tree-${files}`);
  const marker = `${path}.json`;
  const want = JSON.stringify({ ...SHAPE, files });
  if (existsSync(path) && existsSync(marker) && readFileSync(marker, 'utf8') === want) return { path, made: false };
  log(`making ${grouped(files)} files in ${path} (kept for the next run)`);
  const partial = `${path}.partial`;
  rmSync(partial, { recursive: true, force: true });
  rmSync(path, { recursive: true, force: true });
  const pool = randomFillSync(Buffer.allocUnsafe(1 << 20));
  const t0 = performance.now();
  for (let d = 0; d < files / SHAPE.perDir; d++) {
    mkdirSync(join(partial, `d${d}`), { recursive: true });
    for (let i = 0; i < SHAPE.perDir; i++)
      writeFileSync(join(partial, `d${d}`, `f${i}`), pool.subarray(0, ((d * SHAPE.perDir + i) * 2654435761) % 8192));
    if (d % 1000 === 999) log(`  ${grouped((d + 1) * SHAPE.perDir)} files, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  renameSync(partial, path);
  writeFileSync(marker, want);
  return { path, made: true, seconds: (performance.now() - t0) / 1000 };
}

// ---- the run -------------------------------------------------------------------------------------
async function main() {
  const { benchOptions } = await import('./data.mjs');
  const { COOLDOWN_FILE, markDeleted } = await import('./workloads.mjs');
  const args = benchOptions(import.meta.filename, {
    files: { type: 'string', default: '2000000' },
    small: { type: 'string', default: '20000' },
    dir: { type: 'string', default: '/var/tmp/longhaul-scale' },
    out: { type: 'string' },
    prepare: { type: 'boolean' },
  });
  const log = (...a) => console.error(...a);
  const sizes = [...new Set([roundFiles(Number(args.small)), roundFiles(Number(args.files))])].sort((a, b) => a - b);
  mkdirSync(args.dir, { recursive: true });
  const trees = Object.fromEntries(sizes.map((n) => [n, ensureTree(args.dir, n, log)]));
  if (args.prepare) return;

  const deletedAgo = existsSync(COOLDOWN_FILE) ? (Date.now() - Number(readFileSync(COOLDOWN_FILE, 'utf8'))) / 1000 : Infinity;
  const notes = [];
  // The window bench/workloads.mjs waits out before timing creates.
  if (deletedAgo < 420)
    notes.push(
      `a bench deleted its trees ${Math.round(deletedAgo)} s before this run: ext4 without a journal creates files ~10x slower for minutes after that, so the node's creates (and seconds, files/s) may be slowed`,
    );
  for (const n of sizes)
    if (trees[n].made) notes.push(`the ${grouped(n)}-file tree was made just before (page-cached; its writeback may overlap the run)`);
  for (const n of notes) log(`note: ${n}`);

  const work = mkdtempSync(join(args.dir, 'run-'));
  /** A node under /usr/bin/time -v, with a fresh root; `work(addr)` runs against it. Resolves to its peak RSS (MiB) and pool. */
  async function node(name, during) {
    const child = spawn(
      '/usr/bin/time',
      [
        '-v',
        process.execPath,
        CLI,
        'serve',
        '--root',
        join(work, name),
        '--listen',
        '127.0.0.1:0',
        '--no-auth',
        '--json',
        '--log-level',
        'warn',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const line = await new Promise((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', resolve);
      child.once('exit', (c) => reject(new Error(`the node exited (${c}): ${stderr.slice(-500)}`)));
    });
    const { host, port } = JSON.parse(line);
    const addr = `${host}:${port}`;
    const stats = spawnSync(process.execPath, [CLI, 'stats', addr, '--json'], { encoding: 'utf8' });
    if (stats.status !== 0) throw new Error(`stats failed: ${stats.stderr}`);
    const { pool } = JSON.parse(stats.stdout);
    const result = await during(addr);
    // /usr/bin/time forwards no signal: stop the node itself, its only child.
    spawnSync('pkill', ['-TERM', '-P', String(child.pid)]);
    await new Promise((r) => (child.exitCode !== null ? r() : child.on('close', r)));
    return { rssMiB: maxRssMiB(stderr), poolMiB: (pool.buffers * pool.bufferBytes) / MiB, result };
  }
  /** `longhaul send SRC ADDR/DEST --json` under /usr/bin/time -v: its peak RSS (MiB) and summary. */
  function send(src, addr, dest) {
    const r = spawnSync('/usr/bin/time', ['-v', process.execPath, CLI, 'send', src, `${addr}/${dest}`, '--json'], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    if (r.status !== 0) throw new Error(`send ${src} failed (${r.status}): ${r.stderr.slice(-1000)}`);
    return { rssMiB: maxRssMiB(r.stderr), summary: summaryOf(r.stdout) };
  }

  const runs = [];
  let base;
  try {
    const idle = await node('idle', async () => {});
    const one = join(work, 'one.txt');
    writeFileSync(one, 'one small file\n');
    base = { idleNodeMiB: idle.rssMiB, oneFileSenderMiB: NaN };
    for (const n of sizes) {
      log(`pushing ${grouped(n)} files`);
      const t0 = performance.now();
      const busy = await node(`root-${n}`, async (addr) => {
        // The sender's baseline once, against the first node (its peak is not the node's concern).
        if (Number.isNaN(base.oneFileSenderMiB)) base.oneFileSenderMiB = send(one, addr, 'one').rssMiB;
        return send(trees[n].path, addr, 'tree');
      });
      const s = busy.result.summary;
      if (s.files !== n) throw new Error(`sent ${s.files} files, not ${n}`);
      runs.push({
        files: n,
        scanSeconds: s.scanSeconds,
        firstByteSeconds: s.firstByteSeconds,
        seconds: s.seconds,
        bytes: s.bytes,
        streams: s.streams,
        nodeMiB: busy.rssMiB,
        senderMiB: busy.result.rssMiB,
        poolMiB: busy.poolMiB,
      });
      log(
        `  ${grouped(n)} files: ${s.seconds.toFixed(2)} s (scan ${s.scanSeconds.toFixed(2)} s, first byte ${s.firstByteSeconds?.toFixed(2) ?? 'none'} s), node ${Math.round(busy.rssMiB)} MiB, sender ${Math.round(busy.result.rssMiB)} MiB; ${((performance.now() - t0) / 1000).toFixed(0)} s with the node's start and stop`,
      );
    }
  } finally {
    // All deletions at the end, one node root at a time (a directory of many files per batch),
    // so that no measured push follows a mass delete of this run.
    const t0 = performance.now();
    for (const name of readdirSync(work)) rmSync(join(work, name), { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
    if (sizes.at(-1) > 50000) {
      markDeleted();
      log(
        `deleted the node's copies (${((performance.now() - t0) / 1000).toFixed(0)} s): creating files on this disk is ~10x slower for the next minutes`,
      );
    }
  }

  const rows = runs.map((r) => row(r, base));
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const head = spawnSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  const machine = `${cpus().length} x ${cpus()[0].model}, ${Math.round(totalmem() / 2 ** 30)} GiB`;
  const cmd = `npm run bench -- scale --files ${args.files}${args.small !== '20000' ? ` --small ${args.small}` : ''}`;
  console.log(
    [
      `### Many small files pushed to a node (${when} UTC)`,
      '',
      `\`${cmd}\` on ${machine}, ext4 without a journal (source and node root on the same disk), loopback; longhaul ${head}. Trees of 0-8 KiB files, 200 to a directory; default send and serve options. "Within" compares the peak RSS with the node's pool + 64 MiB.`,
      '',
      table(rows, base),
      ...notes.map((n) => `\nNote: ${n}.`),
    ].join('\n'),
  );
  if (args.out) {
    const out = resolve(args.out);
    writeFileSync(
      out,
      `${JSON.stringify({ when, command: cmd, machine, commit: head, shape: SHAPE, baselines: base, runs, rows, notes }, null, 2)}\n`,
    );
    log(`wrote ${out}`);
  }
}

if (process.argv[1] === import.meta.filename) await main();

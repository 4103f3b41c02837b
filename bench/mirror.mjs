// A nightly mirror, second run (issue 32): a tree of many files (long-tailed sizes, mostly
// small) is mirrored once, then --change percent of its files change (content edits, new files,
// deleted files) and it is mirrored again; only the SECOND run is timed, for:
//
//   longhaul send                     (default change detection: size and mtime)
//   longhaul send --checksum          (BLAKE3 of every file, both ends)
//   rsync -a --delete                 (rsync daemon on a loopback port)
//   rsync -c -a --delete              (the same daemon, by checksum)
//
// longhaul gets --delete when `node dist/cli.js send --help` lists it (another branch brings
// it); without it the deleted files stay in longhaul's copy and the output says so, and the
// check below ignores them. After every timed run, `rsync -c -a --dry-run --itemize-changes
// [--delete] SRC/ DEST/` must print nothing: the same result on disk as the source.
//
// Rounds are interleaved (round 1 of every tool, then round 2, ...), each tool into a fresh
// destination (first mirror untimed); median of --runs rounds. The source is made twice without
// copying data: `before/tree`, and `after/tree` = hard links to it (cp -al) with the changes
// applied by writing new files (an edit is a new file renamed over the link), so `before` stays
// as it was. Both stay in the page cache (warm reads for every tool alike).
//
// `--wan` runs every tool over the emulated link of the WAN bench instead of loopback (its
// profile a: 1 Gbit/s, 50 ms RTT, 0.01% loss; lh-netem, two network namespaces, needs root):
// the node and the rsync daemon in one namespace, the clients in the other, the disk shared.
//
// The ext4 here has no journal and creating files for minutes after mass deletions is ~10x
// slower: every destination is fresh and everything is deleted at the end, in one batch.
//
//   node bench/mirror.mjs [--files 100000] [--mib 400] [--change 1] [--runs 3] [--dir /tmp]
//                         [--tools longhaul,longhaul-c,rsync,rsync-c] [--wan] [--no-write]
import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { benchOptions, median } from './data.mjs';

const args = benchOptions(import.meta.filename, {
  files: { type: 'string', default: '100000' },
  mib: { type: 'string', default: '400' },
  change: { type: 'string', default: '1' },
  runs: { type: 'string', default: '3' },
  dir: { type: 'string', default: tmpdir() },
  tools: { type: 'string', default: 'longhaul,longhaul-c,rsync,rsync-c' },
  wan: { type: 'boolean' },
  'no-write': { type: 'boolean' },
});
const FILES = Number(args.files);
const BYTES = Number(args.mib) * 2 ** 20;
const CHANGE = Number(args.change) / 100;
const RUNS = Number(args.runs);
const REPO = join(import.meta.dirname, '..');
const CLI = join(REPO, 'dist', 'cli.js');
const log = (...a) => console.error(...a);
const sh = (cmd) => spawnSync('bash', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 28 });

// ---- the tree ------------------------------------------------------------------------------------
/** mulberry32: the same tree for the same flags. */
function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Long-tailed sizes (Pareto, alpha 1.1, from 1 KiB, at most 64 MiB), scaled to `total` bytes. */
function sizes(n, total, rand) {
  const raw = Array.from({ length: n }, () => Math.min(1024 / Math.pow(1 - rand(), 1 / 1.1), 64 * 2 ** 20));
  const k = total / raw.reduce((a, b) => a + b, 0);
  return raw.map((s) => Math.max(0, Math.round(s * k)));
}

const POOL = randomFillSync(Buffer.allocUnsafe(8 << 20));
/** `bytes` bytes cut from the random pool at `seed`'s offset (distinct files, distinct bytes). */
function writeFile(path, bytes, seed) {
  const fd = openSync(path, 'w');
  let at = (seed * 2654435761) % (POOL.length - 4096);
  for (let done = 0; done < bytes; ) {
    const n = Math.min(bytes - done, POOL.length - at);
    writeSync(fd, POOL, at, n);
    done += n;
    at = (at + 4099) % (POOL.length - 4096);
  }
  closeSync(fd);
}

const pathOf = (i) => `d${String(Math.floor(i / 100)).padStart(4, '0')}/f${i}`;

function makeTrees(work) {
  const rand = prng(32);
  const before = join(work, 'before', 'tree');
  const sz = sizes(FILES, BYTES, rand);
  const t0 = performance.now();
  for (let i = 0; i < FILES; i++) {
    if (i % 100 === 0) mkdirSync(join(before, pathOf(i), '..'), { recursive: true });
    writeFile(join(before, pathOf(i)), sz[i], i);
  }
  log(`made ${FILES} files, ${(sz.reduce((a, b) => a + b, 0) / 2 ** 20).toFixed(0)} MiB, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const after = join(work, 'after', 'tree');
  mkdirSync(join(work, 'after'));
  if (sh(`cp -al ${before} ${after}`).status !== 0) throw new Error('cp -al failed');
  // Of the changed files: 60% edited in place (same size, new bytes, new mtime), 20% new, 20% deleted.
  const changed = Math.max(3, Math.round(FILES * CHANGE));
  const picks = new Set();
  while (picks.size < Math.round(changed * 0.8)) picks.add(Math.floor(rand() * FILES));
  const list = [...picks];
  const edits = list.slice(0, Math.round(changed * 0.6));
  const deletes = list.slice(edits.length);
  let editBytes = 0;
  for (const i of edits) {
    const p = join(after, pathOf(i));
    writeFile(`${p}.new`, sz[i], i + 7 * FILES);
    // An hour later, as a nightly edit would be: made within the second of the original, an
    // edit of the same size escapes rsync's quick check (it compared whole seconds here).
    const later = new Date(Date.now() + 3600_000);
    utimesSync(`${p}.new`, later, later);
    renameSync(`${p}.new`, p);
    editBytes += sz[i];
  }
  for (const i of deletes) unlinkSync(join(after, pathOf(i)));
  const added = changed - edits.length - deletes.length;
  const addSizes = sizes(added, Math.max(added * 4096, BYTES * CHANGE * 0.2), rand);
  for (let k = 0; k < added; k++) writeFile(join(after, pathOf(Math.floor(rand() * FILES)) + `-new${k}`), addSizes[k], 11 * FILES + k);
  const change = { edited: edits.length, editedBytes: editBytes, added, addedBytes: addSizes.reduce((a, b) => a + b, 0), deleted: deletes.length };
  log(`changed: ${JSON.stringify(change)}`);
  return { before, after, change, bytes: sz.reduce((a, b) => a + b, 0) };
}

// ---- the link (--wan) and servers ------------------------------------------------------------------
const TOKEN = 'the mirror bench token, shared by both ends';
/** The WAN bench's profile a, on lh-netem: `{ a: { netns, addr }, b: { netns, addr }, stop }`. */
async function startLink() {
  const netem = join(REPO, 'target', 'release', 'lh-netem');
  if (spawnSync('cargo', ['build', '--release', '-q', '-p', 'longhaul-netem'], { cwd: REPO, stdio: 'inherit' }).status !== 0) throw new Error('building lh-netem failed');
  const relay = spawn(netem, ['--rtt', '50ms', '--rate', '1gbit', '--loss', '0.01%', '--seed', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  relay.stderr.on('data', (d) => (err += d));
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: relay.stdout }).once('line', resolve);
    relay.once('exit', (c) => reject(new Error(`lh-netem exited ${c}: ${err}`)));
  });
  return { ...JSON.parse(line), relay };
}
let link = null;
/** argv in the link's namespace `side` ('a' the clients, 'b' the servers); as is on loopback. */
const within = (side, cmd, argv) => (link ? ['ip', ['netns', 'exec', link[side].netns, cmd, ...argv]] : [cmd, argv]);

function start(side, cmd0, argv0, ready) {
  const [cmd, argv] = within(side, cmd0, argv0);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LONGHAUL_TOKEN: TOKEN } });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${cmd} exited (${code}): ${err.slice(-500)}`)));
    if (ready) createInterface({ input: child.stdout }).on('line', (l) => ready(l) && resolve(child));
    else setTimeout(() => resolve(child), 1000);
  });
}
async function stop(child) {
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

/** Runs to the end; resolves to its wall seconds and its stdout. */
function run(cmd0, argv0) {
  const [cmd, argv] = within('a', cmd0, argv0);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LONGHAUL_TOKEN: TOKEN } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${cmd} ${argv.join(' ')} exited ${code}: ${err.slice(-500)}`));
      resolve({ secs: Number(process.hrtime.bigint() - t0) / 1e9, out });
    });
  });
}

// ---- main ----------------------------------------------------------------------------------------
const work = mkdtempSync(join(args.dir, 'longhaul-mirror-'));
const dst = join(work, 'dst');
mkdirSync(dst);
const sendHelp = sh(`${process.execPath} ${CLI} send --help`).stdout;
const DELETE = /--delete\b/.test(sendHelp);
const servers = [];
try {
  const trees = makeTrees(work);
  if (args.wan) link = await startLink();
  const host = link ? link.b.addr : '127.0.0.1';
  const port = 20000 + Math.floor(Math.random() * 20000);
  const node = `${host}:${port}`;
  servers.push(
    await start('b', process.execPath, [CLI, 'serve', '--root', dst, '--listen', node, '--json', '--log-level', 'warn'], (l) =>
      l.includes('"port"'),
    ),
  );
  const cfg = join(work, 'rsyncd.conf');
  writeFileSync(cfg, `use chroot = no\n[bench]\n  path = ${dst}\n  read only = no\n  uid = root\n  gid = root\n`);
  servers.push(await start('b', 'rsync', ['--daemon', '--no-detach', `--config=${cfg}`, `--port=${port + 1}`, `--address=${host}`]));

  const del = DELETE ? ['--delete'] : [];
  const longhaul = (flags) => ({
    // A directory SRC arrives as DEST/SRC: both runs send a tree named `tree`.
    cmd: ['longhaul send', ...flags, ...del, 'SRC HOST:PORT/DEST'].join(' '),
    mirror: (src, dir) => run(process.execPath, [CLI, 'send', '--json', ...flags, ...del, src, `${node}/${dir}`]),
    // The summary's bytes moved: the file bytes its blocks carried (headers aside).
    sent: (out) => JSON.parse(out.trim().split('\n').at(-1)).bytesMoved,
    lands: (dir) => join(dst, dir, 'tree'),
    deletes: DELETE,
  });
  const rsync = (flags) => ({
    cmd: `rsync ${flags.join(' ')} SRC/ rsync://HOST:PORT/bench/DEST/`,
    mirror: (src, dir) => run('rsync', [...flags, '--stats', `${src}/`, `rsync://${host}:${port + 1}/bench/${dir}/`]),
    // Everything it wrote to the socket: file data, checksums and file lists.
    sent: (out) => Number(/Total bytes sent: ([\d,.]+)/.exec(out)[1].replace(/[,.]/g, '')),
    lands: (dir) => join(dst, dir),
    deletes: true,
  });
  const TOOLS = {
    longhaul: { name: 'longhaul send', ...longhaul([]) },
    'longhaul-c': { name: 'longhaul send --checksum', ...longhaul(['--checksum']) },
    rsync: { name: 'rsync daemon -a --delete', ...rsync(['-a', '--delete']) },
    'rsync-c': { name: 'rsync daemon -c -a --delete', ...rsync(['-c', '-a', '--delete']) },
  };
  const chosen = args.tools.split(',').map((k) => {
    if (!TOOLS[k]) throw new Error(`unknown tool ${k}: ${Object.keys(TOOLS).join(', ')}`);
    return [k, TOOLS[k]];
  });
  if (!DELETE) log('longhaul send has no --delete on this build: deleted files stay in its copy and are left out of its check');

  const times = Object.fromEntries(chosen.map(([k]) => [k, []]));
  const sent = Object.fromEntries(chosen.map(([k]) => [k, []]));
  for (let r = 1; r <= RUNS; r++) {
    for (const [k, t] of chosen) {
      const dir = `${k}-${r}`;
      await t.mirror(trees.before, dir);
      const { secs, out } = await t.mirror(trees.after, dir);
      sent[k].push(t.sent(out));
      // The same result on disk: rsync by checksum finds nothing to do (deletions aside when the
      // tool cannot delete).
      const check = sh(`rsync -c -a --dry-run --itemize-changes ${t.deletes ? '--delete' : ''} ${trees.after}/ ${t.lands(dir)}/`).stdout;
      if (check.trim()) throw new Error(`${t.name}, round ${r}: the copy differs from the source:\n${check.split('\n').slice(0, 20).join('\n')}`);
      times[k].push(secs);
      log(`round ${r} ${t.name.padEnd(28)} ${secs.toFixed(2)} s, ${(sent[k].at(-1) / 2 ** 20).toFixed(1)} MiB sent  (check: identical)`);
    }
  }

  const med = Object.fromEntries(chosen.map(([k]) => [k, median(times[k])]));
  const rows = chosen.map(([k, t]) => {
    const xs = times[k];
    return `| ${t.name} | \`${t.cmd}\` | ${med[k].toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}) | ${(median(sent[k]) / 2 ** 20).toFixed(1)} |`;
  });
  const ratio = (a, b) => (med[a] && med[b] ? `${(med[a] / med[b]).toFixed(1)}x` : 'n/a');
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const fs = sh(`findmnt -no FSTYPE -T ${args.dir}`).stdout.trim();
  const journal = sh(`dumpe2fs -h $(findmnt -no SOURCE -T ${args.dir}) 2>/dev/null | grep -c has_journal`).stdout.trim();
  const c = trees.change;
  const section = [
    `### Mirror, second run (${when} UTC)`,
    '',
    `\`npm run bench -- mirror --files ${FILES} --mib ${args.mib} --change ${args.change} --runs ${RUNS}${link ? ' --wan' : ''}\` on ${cpus().length} x ${cpus()[0].model}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${fs}${journal === '0' ? ' without a journal' : ''}, ${link ? 'over the emulated link of the WAN bench (lh-netem: 1 Gbit/s, 50 ms RTT, 0.01% loss)' : 'loopback'}; longhaul ${sh(`git -C ${REPO} rev-parse --short HEAD`).stdout.trim()}, ${sh('rsync --version').stdout.split('\n')[0].replace(/\s+/g, ' ')}.`,
    `A tree of ${FILES} files (${(trees.bytes / 2 ** 20).toFixed(0)} MiB, long-tailed sizes from 1 KiB) mirrored once, then ${c.edited} files edited (${(c.editedBytes / 2 ** 20).toFixed(1)} MiB), ${c.added} added (${(c.addedBytes / 2 ** 20).toFixed(1)} MiB) and ${c.deleted} deleted; the second mirror timed, median (min–max) of ${RUNS} interleaved rounds, seconds; after each, \`rsync -c -a --dry-run --itemize-changes${DELETE ? ' --delete' : ''} SRC/ DEST/\` printed nothing${DELETE ? '' : ' (longhaul send had no `--delete` on this build: deleted files stayed in its copy and are not part of the comparison)'}.`,
    '',
    '| tool | command | second run, s | MiB sent |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
    `rsync -a / longhaul: ${ratio('rsync', 'longhaul')}; rsync -c / longhaul --checksum: ${ratio('rsync-c', 'longhaul-c')}.`,
  ].join('\n');
  console.log(section);
  if (!args['no-write']) {
    const stamp = new Date().toISOString().slice(0, 10);
    const json = `bench/results/${stamp}-mirror-${FILES}${link ? '-wan' : ''}.json`;
    writeFileSync(join(REPO, json), JSON.stringify({ when, files: FILES, bytes: trees.bytes, change: c, delete: DELETE, runs: RUNS, times, sent }, null, 2) + '\n');
    const path = join(REPO, 'bench', 'RESULTS.md');
    const [b, e] = link ? ['<!-- mirror-wan:begin -->', '<!-- mirror-wan:end -->'] : ['<!-- mirror:begin -->', '<!-- mirror:end -->'];
    const doc = readFileSync(path, 'utf8');
    const title = `Mirror${link ? ' over the emulated 50 ms link' : ''}: the second run of a nightly mirror (\`npm run bench -- mirror${link ? ' --wan' : ''}\`)`;
    const body = `${b}\n## ${title}\n\n${section}\n\nRaw figures: \`${json}\`.\n${e}`;
    writeFileSync(path, doc.includes(b) ? doc.slice(0, doc.indexOf(b)) + body + doc.slice(doc.indexOf(e) + e.length) : `${doc.trimEnd()}\n\n${body}\n`);
    log(`wrote ${json} and bench/RESULTS.md`);
  }
} finally {
  for (const s of servers) await stop(s);
  if (link) await stop(link.relay);
  // One batch at the end (see the top of the file).
  rmSync(work, { recursive: true, force: true });
}

// Mirrors (issue 32): `send --delete` leaves DEST/SRC what rsync -a --delete would (rsync is the
// oracle), within it only and never through a link, sparing what the filters leave out; and
// `send --dry-run` writes nothing and lists exactly what the real run then does.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { olderNode } from './frames.js';
import { CLI, freshDir, runCli } from './helpers.js';

let work: string;
let root: string;
let addr: string;
let node: ChildProcess;
/** The node's JSON event lines so far. */
const events: Record<string, unknown>[] = [];

const lastJson = (s: string): Record<string, unknown> => JSON.parse(s.trim().split('\n').at(-1)!) as Record<string, unknown>;

/** A source tree: files in nested directories, a symlink, fixed mtimes (rsync compares them). */
function buildTree(dir: string): void {
  for (const d of ['a/b', 'gone/deeper', 'c']) mkdirSync(join(dir, d), { recursive: true });
  const files: Record<string, string> = {
    'top.txt': 'top',
    'a/one': 'one'.repeat(100),
    'a/b/two': 'two'.repeat(5000),
    'a/b/edit-me': 'before',
    'gone/deeper/x': 'x',
    'gone/y': 'yy',
    'c/old-name': 'renamed later',
    'c/remove-me': 'remove me',
  };
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  symlinkSync('a/one', join(dir, 'link'));
  const t = new Date('2024-03-01T12:00:00Z');
  for (const f of [...Object.keys(files), 'a/b', 'a', 'gone/deeper', 'gone', 'c', '.']) utimesSync(join(dir, f), t, t);
}

/** Deletions (a file, a directory with contents), a rename, a new file, an edit. */
function changeTree(dir: string): void {
  rmSync(join(dir, 'c', 'remove-me'));
  rmSync(join(dir, 'gone'), { recursive: true });
  renameSync(join(dir, 'c', 'old-name'), join(dir, 'c', 'new-name'));
  writeFileSync(join(dir, 'a', 'fresh'), 'new file');
  writeFileSync(join(dir, 'a', 'b', 'edit-me'), 'after, longer');
}

/** Every entry under `dir` (paths below it): type, mode, size, mtime to the ns, and a sha256 of files and link targets. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(dir, p), { bigint: true });
      const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f';
      const body = kind === 'f' ? readFileSync(join(dir, p)) : kind === 'l' ? readlinkSync(join(dir, p)) : '';
      out.set(kind === 'd' ? `${p}/` : p, `${kind} ${st.mode} ${st.size} ${st.mtimeNs} ${createHash('sha256').update(body).digest('hex')}`);
      if (kind === 'd') walk(p);
    }
  };
  walk('');
  return out;
}

/** rsync's own dry run of the mirror: its `*deleting` paths and the other itemized lines. */
function rsyncPlan(src: string, destDir: string, extra: string[] = []): { deleting: string[]; other: string[] } {
  const r = spawnSync('rsync', ['-a', '--delete', '--dry-run', '--itemize-changes', ...extra, src, `${destDir}/`], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const lines = r.stdout.split('\n').filter(Boolean);
  return {
    deleting: lines.filter((l) => l.startsWith('*deleting')).map((l) => l.replace(/^\*deleting\s+/, '')),
    other: lines.filter((l) => !l.startsWith('*deleting')),
  };
}

beforeAll(async () => {
  work = freshDir('mirror');
  root = join(work, 'root');
  node = spawn(process.execPath, [CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--no-auth', '--json', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: node.stdout! });
  const first = await new Promise<string>((resolve) => lines.once('line', resolve));
  const ev = JSON.parse(first) as { type: string; host: string; port: number };
  expect(ev.type).toBe('listening');
  addr = `${ev.host}:${ev.port}`;
  lines.on('line', (l) => events.push(JSON.parse(l) as Record<string, unknown>));
});

afterAll(() => {
  node?.kill('SIGKILL');
});

describe('issue 32: send --delete', () => {
  it('leaves DEST/SRC as rsync -a --delete would, deletes exactly what rsync would, spares excluded paths and links out', async () => {
    const src = join(work, 'm1', 'src');
    buildTree(src);
    expect((await runCli(['send', src, `${addr}/m1`, '-q'])).status).toBe(0);
    const mirror = join(root, 'm1', 'src');
    changeTree(src);
    utimesSync(join(src, 'a', 'b', 'edit-me'), new Date('2024-03-02T00:00:00Z'), new Date('2024-03-02T00:00:00Z'));
    // Only on the node: a directory the filter leaves out, and a link to outside the root.
    mkdirSync(join(mirror, 'local-only'));
    writeFileSync(join(mirror, 'local-only', 'keep'), 'node side');
    const outside = join(work, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'victim'), 'must stay');
    symlinkSync(outside, join(mirror, 'escape'));

    const expected = rsyncPlan(src, join(root, 'm1'), ['--exclude', 'local-only/']);
    expect(expected.deleting.sort()).toEqual([
      'src/c/old-name',
      'src/c/remove-me',
      'src/escape',
      'src/gone/',
      'src/gone/deeper/',
      'src/gone/deeper/x',
      'src/gone/y',
    ]);
    const storedBefore = await stored();

    const r = await runCli(['send', src, `${addr}/m1`, '--delete', '--exclude', 'local-only/', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const s = lastJson(r.stdout) as { type: string; deleted: { files: number; dirs: number; bytes: number; paths: string[] } };
    expect(s.type).toBe('summary');
    expect([...s.deleted.paths].sort()).toEqual(expected.deleting.sort());
    expect(s.deleted).toMatchObject({ files: 5, dirs: 2, bytes: 'x'.length + 'yy'.length + 'renamed later'.length + 'remove me'.length });

    // rsync finds nothing left to do, --checksum reading every byte.
    const after = rsyncPlan(src, join(root, 'm1'), ['--checksum', '--exclude', 'local-only/']);
    expect(after).toEqual({ deleting: [], other: [] });
    expect(readFileSync(join(mirror, 'local-only', 'keep'), 'utf8')).toBe('node side');
    expect(() => lstatSync(join(mirror, 'escape'))).toThrow();
    expect(readFileSync(join(outside, 'victim'), 'utf8')).toBe('must stay');
    // The node's own state directory is untouched.
    expect(lstatSync(join(root, '.longhaul')).isDirectory()).toBe(true);

    // The node's end line counts what went, and the freed bytes left its stored total.
    await expect.poll(() => events.find((e) => e.type === 'transfer:end' && e.deleted === 7), { timeout: 5000 }).toBeTruthy();
    // New: 'new file', 'renamed later'; edit-me 6 -> 13 bytes; deleted: 25 bytes (the files
    // planted on the node were never counted, the link has no bytes).
    expect(await stored()).toBe(storedBefore + 8 + 13 + 7 - 25);

    // The human summary: the deleted line, and with -v the paths.
    writeFileSync(join(mirror, 'stray'), 'stray');
    const v = await runCli(['send', src, `${addr}/m1`, '--delete', '--exclude', 'local-only/', '-v']);
    expect(v.status, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/^deleted: 1 file, 0 dirs \(5 B\)$/m);
    expect(v.stderr).toMatch(/^- src\/stray$/m);
  });

  it('refuses a source that lists nothing unless --force, and several sources, with E_USAGE; .longhaul at the top survives', async () => {
    const src = join(work, 'm2', 'empty');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'f'), 'f');
    expect((await runCli(['send', src, `${addr}/m2`, '-q'])).status).toBe(0);
    rmSync(join(src, 'f'));
    const r = await runCli(['send', src, `${addr}/m2`, '--delete']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /^longhaul: E_USAGE: (invalid option: )?--delete from empty, which lists nothing, would empty its copy on the node: .*--force/m,
    );
    expect(readFileSync(join(root, 'm2', 'empty', 'f'), 'utf8')).toBe('f');

    // Every entry left out is nothing too.
    writeFileSync(join(src, 'g.tmp'), 'g');
    const ex = await runCli(['send', src, `${addr}/m2`, '--delete', '--exclude', '*.tmp']);
    expect(ex.status).toBe(2);
    expect(ex.stderr).toMatch(
      /E_USAGE: (invalid option: )?--delete from empty, which lists nothing \(every entry left out or not sendable\)/,
    );
    rmSync(join(src, 'g.tmp'));

    mkdirSync(join(root, 'm2', 'empty', '.longhaul'));
    const forced = await runCli(['send', src, `${addr}/m2`, '--delete', '--force', '--json']);
    expect(forced.status, forced.stderr).toBe(0);
    expect(lastJson(forced.stdout)).toMatchObject({ deleted: { files: 1, dirs: 0, paths: ['empty/f'] } });
    expect(readdirSync(join(root, 'm2', 'empty'))).toEqual(['.longhaul']);

    const two = await runCli(['send', src, src, `${addr}/m2`, '--delete']);
    expect(two.status).toBe(2);
    expect(two.stderr).toMatch(/^longhaul: E_USAGE: --delete mirrors one SRC/m);
    const file = await runCli(['send', join(work, 'outside', 'victim'), `${addr}/m2`, '--delete']);
    expect(file.status).toBe(2);
    expect(file.stderr).toMatch(/E_USAGE: (invalid option: )?--delete mirrors a directory/);
  });
});

describe('issue 32: send --delete lists are bounded', () => {
  it('--json names the first 1,000 paths and counts them all; -v says how many more', async () => {
    const src = join(work, 'm5', 'src');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'keep'), 'k');
    expect((await runCli(['send', src, `${addr}/m5`, '-q'])).status).toBe(0);
    const many = join(root, 'm5', 'src', 'many');
    mkdirSync(many);
    for (let i = 0; i < 1200; i++) writeFileSync(join(many, `f${i}`), '');
    const dry = await runCli(['send', src, `${addr}/m5`, '--delete', '-n', '-v']);
    expect(dry.stderr).toMatch(/^\.\.\. and 201 more$/m);
    const r = await runCli(['send', src, `${addr}/m5`, '--delete', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const d = (lastJson(r.stdout) as { deleted: { files: number; dirs: number; paths: string[] } }).deleted;
    expect({ files: d.files, dirs: d.dirs, listed: d.paths.length }).toEqual({ files: 1200, dirs: 1, listed: 1000 });
    expect(readdirSync(join(root, 'm5', 'src'))).toEqual(['keep']);
  });

  it('-v shows a control character in a name on the node as \\xNN, never raw to the terminal', async () => {
    const src = join(work, 'm6', 'src');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'keep'), 'k');
    expect((await runCli(['send', src, `${addr}/m6`, '-q'])).status).toBe(0);
    // A name someone on the node made: an escape sequence that would clear the user's screen.
    writeFileSync(join(root, 'm6', 'src', 'x\u001b[2Jy'), '');
    const r = await runCli(['send', src, `${addr}/m6`, '--delete', '-v']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('- src/x\\x1b[2Jy');
    expect(r.stderr).not.toContain('\u001b');
  });
});

describe('issue 32: send --dry-run', () => {
  it('writes nothing on the node and lists exactly what the real run then sends, updates and deletes', async () => {
    const src = join(work, 'm3', 'src');
    buildTree(src);
    expect((await runCli(['send', src, `${addr}/m3`, '-q'])).status).toBe(0);
    changeTree(src);
    writeFileSync(join(root, 'm3', 'src', 'stray'), 'stray');
    const dest = join(root, 'm3');
    const before = snapshot(dest);
    const state = snapshot(join(root, '.longhaul'));

    const dry = await runCli(['send', src, `${addr}/m3`, '--delete', '-n', '--json']);
    expect(dry.status, dry.stderr).toBe(0);
    const plan = lastJson(dry.stdout) as {
      type: string;
      newPaths: string[];
      changedPaths: string[];
      newFiles: number;
      changedFiles: number;
      deleted: { paths: string[] };
    };
    expect(plan.type).toBe('plan');
    expect(snapshot(dest)).toEqual(before);
    expect(snapshot(join(root, '.longhaul'))).toEqual(state);
    // rsync's dry run agrees on what goes.
    expect([...plan.deleted.paths].sort()).toEqual(rsyncPlan(src, dest).deleting.sort());

    const human = await runCli(['send', src, `${addr}/m3`, '--delete', '--dry-run', '-v']);
    expect(human.status, human.stderr).toBe(0);
    expect(human.stderr).toMatch(
      /^dry run: would send 2 files \(21 B\), update 1 \(13 B\), delete 7 \(5 files, 2 dirs, 30 B\); \d+ unchanged/m,
    );
    expect(human.stderr).toMatch(/^\+ src\/a\/fresh$/m);
    expect(human.stderr).toMatch(/^> src\/a\/b\/edit-me$/m);
    expect(human.stderr).toMatch(/^- src\/gone\/$/m);
    expect(snapshot(dest)).toEqual(before);

    const real = await runCli(['send', src, `${addr}/m3`, '--delete', '-q']);
    expect(real.status, real.stderr).toBe(0);
    const after = snapshot(dest);
    const gone = [...before.keys()].filter((p) => !after.has(p));
    const added = [...after.keys()].filter((p) => !before.has(p) && !p.endsWith('/'));
    // A file whose bytes changed (its mtime alone would be the parent directory's business).
    const changed = [...after.keys()].filter((p) => before.has(p) && !p.endsWith('/') && before.get(p) !== after.get(p));
    expect([...plan.deleted.paths].sort()).toEqual(gone.sort());
    expect([...plan.newPaths].sort()).toEqual(added.sort());
    expect([...plan.changedPaths].sort()).toEqual(changed.sort());
    expect(plan.newFiles).toBe(2);
    expect(plan.changedFiles).toBe(1);
  });
});

describe('issue 32: send --dry-run --checksum', () => {
  it('finds a file edited in place (same size and mtime) only by content, as the real -c run then does', async () => {
    const src = join(work, 'm4', 'src');
    buildTree(src);
    expect((await runCli(['send', src, `${addr}/m4`, '-q'])).status).toBe(0);
    // Same length, same mtime, other bytes.
    const t = lstatSync(join(src, 'a', 'one')).mtime;
    writeFileSync(join(src, 'a', 'one'), 'ONE'.repeat(100));
    utimesSync(join(src, 'a', 'one'), t, t);
    const dest = join(root, 'm4');
    const before = snapshot(dest);
    const quick = lastJson((await runCli(['send', src, `${addr}/m4`, '-n', '--json'])).stdout);
    expect(quick).toMatchObject({ type: 'plan', newFiles: 0, changedFiles: 0, changedPaths: [], deleted: null });
    const byContent = lastJson((await runCli(['send', src, `${addr}/m4`, '-n', '-c', '--json'])).stdout);
    expect(byContent).toMatchObject({ type: 'plan', newFiles: 0, changedFiles: 1, changedPaths: ['src/a/one'], changedBytes: 300 });
    expect(snapshot(dest)).toEqual(before);
    const real = await runCli(['send', src, `${addr}/m4`, '-c', '-q']);
    expect(real.status, real.stderr).toBe(0);
    const after = snapshot(dest);
    expect([...after.keys()].filter((p) => !p.endsWith('/') && before.get(p) !== after.get(p))).toEqual(['src/a/one']);
  });
});

describe('issue 32: send --dry-run and metadata', () => {
  it('lists a file whose mode or mtime changed as an update of no bytes, changes nothing, and the real run then sets it', async () => {
    const src = join(work, 'm6', 'src');
    buildTree(src);
    expect((await runCli(['send', src, `${addr}/m6`, '-q'])).status).toBe(0);
    chmodSync(join(src, 'a', 'one'), 0o600);
    const dest = join(root, 'm6');
    const before = snapshot(dest);
    const plan = lastJson((await runCli(['send', src, `${addr}/m6`, '-n', '--json'])).stdout);
    expect(plan).toMatchObject({ type: 'plan', newFiles: 0, changedFiles: 1, changedPaths: ['src/a/one'], changedBytes: 0 });
    expect(snapshot(dest)).toEqual(before);
    const real = await runCli(['send', src, `${addr}/m6`, '--json']);
    expect(real.status, real.stderr).toBe(0);
    expect(lastJson(real.stdout)).toMatchObject({ type: 'summary', bytesMoved: 0 });
    const after = snapshot(dest);
    expect([...after.keys()].filter((p) => before.get(p) !== after.get(p))).toEqual(['src/a/one']);
    expect(lstatSync(join(dest, 'src', 'a', 'one')).mode & 0o7777).toBe(0o600);
    expect(rsyncPlan(`${src}/`, join(dest, 'src')).other).toEqual([]);
  });
});

describe('issue 32: mirrors and an older node', () => {
  it('--delete and --dry-run to a node that does not know them: E_VERSION naming the flag, before MANIFEST', async () => {
    // An older node: HELLO_OK with every feature up to change detection (bits 0-5), none of the mirror bits.
    const older = await olderNode(63);
    try {
      const src = freshDir('older-mirror');
      writeFileSync(join(src, 'f'), 'x');
      const port = older.port;
      for (const flag of ['--delete', '--dry-run']) {
        const r = await runCli(['send', flag, src, `127.0.0.1:${port}/d`]);
        expect(r.status, r.stderr).toBe(3);
        expect(r.stderr).toMatch(
          new RegExp(`^longhaul: E_VERSION: the node does not support ${flag} .*\\(fix: upgrade the older end\\)$`, 'm'),
        );
      }
      // HELLO only, each time: no MANIFEST went out.
      expect(older.frames).toEqual([0x01, 0x01]);
    } finally {
      older.close();
    }
  });
});

/** The node's stored bytes, from `stats --json`. */
async function stored(): Promise<number> {
  const r = await runCli(['stats', addr, '--json']);
  expect(r.status, r.stderr).toBe(0);
  const s = lastJson(r.stdout) as { stored?: number; storedBytes?: number; capacity?: { stored: number } };
  const v = s.stored ?? s.storedBytes ?? s.capacity?.stored;
  expect(typeof v).toBe('number');
  return v!;
}

// Metadata a mirror keeps (issue 32): hard links arrive as links, with rsync as the oracle,
// against a node running as its own process.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chownSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  chmodSync,
  utimesSync,
} from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { olderNode } from './frames.js';
import { CLI, finish, freshDir, randomFile, runCli } from './helpers.js';

let work: string;
let root: string;
let addr: string;
const nodes: ChildProcess[] = [];

/** A node process on a free port, running as `as` (uid and gid) when given. */
async function startNode(dir: string, as: { uid?: number; gid?: number } = {}): Promise<string> {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--root', dir, '--listen', '127.0.0.1:0', '--no-auth', '--json', '--log-level', 'warn'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      ...as,
    },
  );
  nodes.push(child);
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  const ev = JSON.parse(first) as { host: string; port: number };
  return `${ev.host}:${ev.port}`;
}

/** What rsync would still change to make `dest` equal `src` (empty: nothing). */
function itemize(src: string, dest: string, flags: string[]): string {
  const r = spawnSync('rsync', [...flags, '--checksum', '--dry-run', '--itemize-changes', `${src}/`, `${dest}/`], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

const summaryOf = (stdout: string): Record<string, unknown> => JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;

beforeAll(async () => {
  work = freshDir('metadata');
  root = join(work, 'root');
  mkdirSync(root);
  addr = await startNode(root);
});

afterAll(() => {
  for (const n of nodes) n.kill('SIGKILL');
});

/** A node running as nobody (uid 65534), its root `work/name` its own; the test dirs made passable for it. */
async function nodeAsNobody(name: string): Promise<{ nobodyRoot: string; nobody: Awaited<ReturnType<typeof startNode>> }> {
  chmodSync(process.env.LONGHAUL_TEST_DIR!, 0o755);
  chmodSync(work, 0o755);
  const nobodyRoot = join(work, name);
  mkdirSync(nobodyRoot);
  chownSync(nobodyRoot, 65534, 65534);
  return { nobodyRoot, nobody: await startNode(nobodyRoot, { uid: 65534, gid: 65534 }) };
}

describe('issue 32: hard links are kept', () => {
  it('three names of one file and a pair arrive sharing inodes; rsync -H finds nothing to change, on a second run too', async () => {
    const src = join(work, 'links');
    mkdirSync(join(src, 'sub'), { recursive: true });
    randomFile(join(src, 'sub', 'big'), 3 << 20);
    linkSync(join(src, 'sub', 'big'), join(src, 'a-big'));
    linkSync(join(src, 'sub', 'big'), join(src, 'z-big'));
    writeFileSync(join(src, 'pair1'), 'small pair');
    linkSync(join(src, 'pair1'), join(src, 'pair2'));
    writeFileSync(join(src, 'alone'), 'x'.repeat(5000));
    chmodSync(join(src, 'alone'), 0o640);
    symlinkSync('sub/big', join(src, 'sym'));

    const r = await runCli(['send', src, `${addr}/h`, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const s = summaryOf(r.stdout);
    // The bytes of each file once: 3 MiB + 10 + 5000, not three copies of the big one.
    expect(s.bytes).toBe((3 << 20) + 10 + 5000);
    expect(s.hardLinks).toBe(0);
    expect(r.stderr).not.toMatch(/not kept/);

    const dest = join(root, 'h', 'links');
    const ino = (p: string): number => statSync(join(dest, p)).ino;
    expect(ino('a-big')).toBe(ino('sub/big'));
    expect(ino('z-big')).toBe(ino('sub/big'));
    expect(ino('pair2')).toBe(ino('pair1'));
    expect(ino('alone')).not.toBe(ino('pair1'));
    expect(statSync(join(dest, 'sub', 'big')).nlink).toBe(3);
    expect(itemize(src, dest, ['-aH'])).toBe('');

    // Again, with every file compared by content and read back: the links stay, nothing moves.
    const again = await runCli(['send', src, `${addr}/h`, '--json', '--checksum', '--verify', 'full']);
    expect(again.status, again.stderr).toBe(0);
    expect(summaryOf(again.stdout).bytesMoved).toBe(0);
    expect(statSync(join(dest, 'sub', 'big')).nlink).toBe(3);
    expect(itemize(src, dest, ['-aH'])).toBe('');

    // A name that was a separate file at the destination becomes a link.
    rmSync(join(dest, 'pair2'));
    writeFileSync(join(dest, 'pair2'), 'small pair');
    expect(ino('pair2')).not.toBe(ino('pair1'));
    const third = await runCli(['send', src, `${addr}/h`, '-q']);
    expect(third.status, third.stderr).toBe(0);
    expect(ino('pair2')).toBe(ino('pair1'));

    // Pulled back, the client makes the same links.
    const back = join(work, 'back');
    const got = await runCli(['get', `${addr}/h/links`, back, '-q']);
    expect(got.status, got.stderr).toBe(0);
    expect(statSync(join(back, 'links', 'z-big')).ino).toBe(statSync(join(back, 'links', 'sub', 'big')).ino);
    expect(itemize(src, join(back, 'links'), ['-aH'])).toBe('');
  });
});

/** A file of `size` bytes with 4 KiB of data at each of `at` and holes elsewhere (`truncate -s` + `dd conv=notrunc`). */
function sparseFile(path: string, size: number, at: number[]): void {
  expect(spawnSync('truncate', ['-s', String(size), path]).status).toBe(0);
  for (const offset of at) {
    const dd = spawnSync('dd', ['if=/dev/urandom', `of=${path}`, 'bs=4096', 'count=1', `seek=${offset / 4096}`, 'conv=notrunc'], {
      encoding: 'utf8',
    });
    expect(dd.status, dd.stderr).toBe(0);
  }
}

describe('issue 32: sparse files keep their holes', () => {
  it('a 64 MiB file with two 4 KiB extents travels as its data and arrives with its holes; verified in full', async () => {
    const src = join(work, 'sparse');
    mkdirSync(src);
    sparseFile(join(src, 'disk.img'), 64 << 20, [8 << 20, 40 << 20]);
    // One that is all hole, and one whose data ends before a hole at its end.
    sparseFile(join(src, 'empty.img'), 16 << 20, []);
    sparseFile(join(src, 'head.img'), 32 << 20, [0]);
    randomFile(join(src, 'dense'), 100_000);

    const r = await runCli(['send', src, `${addr}/s`, '--json', '--verify', 'full']);
    expect(r.status, r.stderr).toBe(0);
    const s = summaryOf(r.stdout);
    expect(s.bytes).toBe((64 << 20) + (16 << 20) + (32 << 20) + 100_000);
    expect(s.sparseFiles).toBe(0);
    expect(r.stderr).not.toMatch(/not kept/);
    // Only the blocks that hold data travel (1 MiB blocks: at most two per extent, and the
    // dense file's), far below the 112 MiB of the files.
    expect(s.bytesMoved as number).toBeLessThan(8 << 20);
    expect(s.holeBytes as number).toBeGreaterThan(100 << 20);
    expect(s.verifiedFiles).toBe(4);

    const dest = join(root, 's', 'sparse');
    for (const f of ['disk.img', 'empty.img', 'head.img']) {
      const st = statSync(join(dest, f));
      expect(st.size).toBe(statSync(join(src, f)).size);
      // Allocated: the data and what the file system rounds it to, not the holes.
      expect(st.blocks * 512, f).toBeLessThan(1 << 20);
    }
    expect(itemize(src, dest, ['-aHS'])).toBe('');

    // A second run moves nothing; a changed extent moves its block again.
    const again = await runCli(['send', src, `${addr}/s`, '--json']);
    expect(again.status, again.stderr).toBe(0);
    expect(summaryOf(again.stdout).bytesMoved).toBe(0);
    sparseFile(join(src, 'disk.img'), 64 << 20, [8 << 20]);
    const third = await runCli(['send', src, `${addr}/s`, '--json', '--checksum']);
    expect(third.status, third.stderr).toBe(0);
    // The changed file travels again, as its data blocks only.
    expect(summaryOf(third.stdout).bytesMoved as number).toBeLessThan(8 << 20);
    expect(statSync(join(dest, 'disk.img')).blocks * 512).toBeLessThan(1 << 20);
    expect(itemize(src, dest, ['-aHS'])).toBe('');

    // Pulled back, the holes stay holes on the client too.
    const back = join(work, 'sparse-back');
    const got = await runCli(['get', `${addr}/s/sparse`, back, '-q']);
    expect(got.status, got.stderr).toBe(0);
    expect(statSync(join(back, 'sparse', 'disk.img')).blocks * 512).toBeLessThan(1 << 20);
    expect(itemize(src, join(back, 'sparse'), ['-aHS'])).toBe('');
  });
});

// The tests run as root (the CI container); elsewhere the owner cases cannot make files owned by another user.
const root0 = process.getuid?.() === 0;

describe('issue 32: -a keeps owners and groups, or names them', () => {
  it.skipIf(!root0)('send -a: files of other users keep their numeric owner and group; rsync -aHS finds nothing to change', async () => {
    const src = join(work, 'owned');
    mkdirSync(join(src, 'd'), { recursive: true });
    writeFileSync(join(src, 'd', 'f'), 'owned by 1234');
    writeFileSync(join(src, 'g'), 'group only');
    writeFileSync(join(src, 'setgid'), 'x');
    symlinkSync('d/f', join(src, 'l'));
    chownSync(join(src, 'd', 'f'), 1234, 2345);
    chownSync(join(src, 'd'), 1234, 1234);
    chownSync(join(src, 'g'), 0, 2345);
    chownSync(join(src, 'setgid'), 1234, 2345);
    chmodSync(join(src, 'setgid'), 0o2755);
    lchownSync(join(src, 'l'), 4321, 4321);

    const r = await runCli(['send', '-a', src, `${addr}/o`, '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(summaryOf(r.stdout).ownerNotKept).toBe(0);
    expect(r.stderr).not.toMatch(/not kept/);
    const dest = join(root, 'o', 'owned');
    const ids = (p: string): number[] => {
      const st = lstatSync(join(dest, p));
      return [st.uid, st.gid];
    };
    expect(ids('d/f')).toEqual([1234, 2345]);
    expect(ids('d')).toEqual([1234, 1234]);
    expect(ids('g')).toEqual([0, 2345]);
    expect(ids('l')).toEqual([4321, 4321]);
    // The node's own rule on set-id bits still holds (it clears them unless --keep-setid), after the chown.
    expect(lstatSync(join(dest, 'setgid')).mode & 0o7777).toBe(0o755);
    const rs = itemize(src, dest, ['-aHS']).split('\n').filter(Boolean);
    expect(rs).toEqual(['.f...p..... setgid']);

    // Without -a the ids are not asked for: the node's own, as rsync without -o/-g.
    // Said, not dropped in silence: d, d/f, g, setgid and l belong to others than the sender.
    const plain = await runCli(['send', src, `${addr}/plain`]);
    expect(plain.status, plain.stderr).toBe(0);
    expect(plain.stderr).toMatch(/^not kept: owner of 5 files: not asked for \(--owner, --group or -a keeps it\)$/m);
    expect(lstatSync(join(root, 'plain', 'owned', 'd', 'f')).uid).toBe(0);
  });

  it.skipIf(!root0)('a node that is not root names the owners it could not set; the transfer still succeeds', async () => {
    const { nobodyRoot, nobody } = await nodeAsNobody('nobody-root');
    const src = join(work, 'owned2');
    mkdirSync(src);
    for (const f of ['a', 'b', 'c']) {
      writeFileSync(join(src, f), f);
      chownSync(join(src, f), 1234, 2345);
    }
    const r = await runCli(['send', '--owner', '--group', src, `${nobody}/o`, '--json']);
    expect(r.status, r.stderr).toBe(0);
    // The three files and their directory.
    expect(summaryOf(r.stdout)).toMatchObject({ ownerNotKept: 4, ownerNotKeptWhy: 'the node is not root' });
    const human = await runCli(['send', '-a', src, `${nobody}/o2`]);
    expect(human.status, human.stderr).toBe(0);
    expect(human.stderr).toMatch(/^not kept: owner of 4 files: the node is not root$/m);
    expect(lstatSync(join(nobodyRoot, 'o2', 'owned2', 'a')).uid).toBe(65534);
  });
});

/** Sets extended attributes on `path` (not following a symlink): node has no API for them. */
function setXattrs(path: string, attrs: Record<string, string>): void {
  const py = `import os,sys,json\nfor k,v in json.loads(sys.argv[2]).items(): os.setxattr(sys.argv[1], k, v.encode(), follow_symlinks=False)`;
  const r = spawnSync('python3', ['-c', py, path, JSON.stringify(attrs)], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

function getXattr(path: string, name: string): string {
  const r = spawnSync('python3', ['-c', 'import os,sys; print(os.getxattr(sys.argv[1], sys.argv[2]).decode())', path, name], {
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim();
}

describe('issue 32: -a keeps what rsync -aHAXS keeps', () => {
  it.skipIf(!root0)(
    'a tree of links, a sparse file, xattrs, modes, symlinks and other owners: rsync -aHAXS finds nothing to change',
    async () => {
      const src = join(work, 'mirror');
      mkdirSync(join(src, 'sub'), { recursive: true });
      randomFile(join(src, 'sub', 'data'), 300_000);
      linkSync(join(src, 'sub', 'data'), join(src, 'data-link'));
      linkSync(join(src, 'sub', 'data'), join(src, 'sub', 'data-link2'));
      sparseFile(join(src, 'image'), 64 << 20, [4 << 20, 50 << 20]);
      writeFileSync(join(src, 'tagged'), 'with attributes');
      setXattrs(join(src, 'tagged'), { 'user.origin': 'lab 7', 'user.empty': '', 'trusted.audit': 'root only' });
      setXattrs(join(src, 'sub'), { 'user.dir': 'a directory attribute' });
      chmodSync(join(src, 'tagged'), 0o600);
      symlinkSync('sub/data', join(src, 'link'));
      chownSync(join(src, 'sub', 'data'), 1234, 2345);
      chownSync(join(src, 'image'), 4321, 1);

      const r = await runCli(['send', '-a', src, `${addr}/m`, '--json']);
      expect(r.status, r.stderr).toBe(0);
      const s = summaryOf(r.stdout);
      expect(s).toMatchObject({ hardLinks: 0, sparseFiles: 0, ownerNotKept: 0, xattrsNotKept: 0 });
      expect(s.bytesMoved as number).toBeLessThan(8 << 20);
      expect(r.stderr).not.toMatch(/not kept/);
      const dest = join(root, 'm', 'mirror');
      expect(itemize(src, dest, ['-aHAXS'])).toBe('');
      expect(statSync(join(dest, 'data-link')).ino).toBe(statSync(join(dest, 'sub', 'data')).ino);
      expect(statSync(join(dest, 'image')).blocks * 512).toBeLessThan(1 << 20);
      expect(getXattr(join(dest, 'tagged'), 'trusted.audit')).toBe('root only');

      // Without -a: the node's owner and no attributes, as rsync without -o -g -X; said in the docs.
      const plain = await runCli(['send', src, `${addr}/plain-m`, '-q']);
      expect(plain.status, plain.stderr).toBe(0);
      expect(itemize(src, join(root, 'plain-m', 'mirror'), ['-rlptHS'])).toBe('');
    },
  );

  it.skipIf(!root0)('a node that is not root sets user.* attributes and names the files whose others it could not set', async () => {
    const { nobodyRoot, nobody } = await nodeAsNobody('nobody-x');
    const src = join(work, 'xsrc');
    mkdirSync(src);
    writeFileSync(join(src, 'u'), 'user only');
    writeFileSync(join(src, 't'), 'trusted too');
    setXattrs(join(src, 'u'), { 'user.a': '1' });
    setXattrs(join(src, 't'), { 'user.b': '2', 'trusted.c': '3' });
    const r = await runCli(['send', '--xattrs', src, `${nobody}/x`]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^not kept: extended attributes of 1 file: the node sets only user\.\* unless it runs as root/m);
    expect(getXattr(join(nobodyRoot, 'x', 'xsrc', 'u'), 'user.a')).toBe('1');
    expect(getXattr(join(nobodyRoot, 'x', 'xsrc', 't'), 'user.b')).toBe('2');
  });

  it.skipIf(!root0)(
    'a root node without --keep-setid sets no file capabilities (they grant privileges as setuid does) and names them',
    async () => {
      const src = join(work, 'caps');
      mkdirSync(src);
      writeFileSync(join(src, 'tool'), '#!/bin/sh\n');
      chmodSync(join(src, 'tool'), 0o755);
      // vfs_cap_data revision 2: CAP_SETUID permitted and effective.
      const py = `import os,struct,sys\nos.setxattr(sys.argv[1], 'security.capability', struct.pack('<IIIII', 0x02000001, 1 << 7, 0, 0, 0))`;
      const set = spawnSync('python3', ['-c', py, join(src, 'tool')], { encoding: 'utf8' });
      expect(set.status, set.stderr).toBe(0);
      setXattrs(join(src, 'tool'), { 'user.kept': 'yes' });
      const r = await runCli(['send', '-a', src, `${addr}/caps`]);
      expect(r.status, r.stderr).toBe(0);
      // (Wrapped to the terminal's width.)
      expect(r.stderr).toMatch(/^not kept: extended attributes of 1 file: .*file capabilities only with\s+--keep-setid/m);
      const dest = join(root, 'caps', 'caps', 'tool');
      expect(getXattr(dest, 'user.kept')).toBe('yes');
      const cap = spawnSync('python3', ['-c', 'import os,sys; print(os.getxattr(sys.argv[1], "security.capability"))', dest], {
        encoding: 'utf8',
      });
      expect(cap.status).not.toBe(0);
      expect(cap.stderr).toMatch(/No data available/);
    },
  );
});

function removeXattr(path: string, name: string): void {
  const r = spawnSync('python3', ['-c', 'import os,sys; os.removexattr(sys.argv[1], sys.argv[2])', path, name], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

describe('issue 32: files found unchanged get the source metadata', () => {
  it.skipIf(!root0)(
    'a chmod, an xattr, a directory mode, an mtime (-c) and a chown at the source are applied by the next send -a; rsync -aHAXS finds nothing',
    async () => {
      const src = join(work, 'meta-sync');
      mkdirSync(join(src, 'd'), { recursive: true });
      setXattrs(join(src, 'd'), { 'user.gone': 'removed later', 'user.stays': 'kept' });
      writeFileSync(join(src, 'mode'), 'chmod me');
      writeFileSync(join(src, 'tagged'), 'attributes change');
      setXattrs(join(src, 'tagged'), { 'user.keep': 'same', 'user.change': 'before', 'user.drop': 'gone later' });
      writeFileSync(join(src, 'touched'), 'only its mtime changes');
      writeFileSync(join(src, 'd', 'owned'), 'chown me');
      chownSync(join(src, 'd', 'owned'), 1234, 2345);
      writeFileSync(join(src, 'other'), 'owned by another user, chmodded');
      chownSync(join(src, 'other'), 1234, 2345);
      writeFileSync(join(src, 'pair1'), 'a linked pair');
      linkSync(join(src, 'pair1'), join(src, 'pair2'));
      const first = await runCli(['send', '-a', '--delete', src, `${addr}/ms`, '-q']);
      expect(first.status, first.stderr).toBe(0);
      const dest = join(root, 'ms', 'meta-sync');
      expect(itemize(src, dest, ['-aHAXS'])).toBe('');
      const ino = (p: string): number => statSync(join(dest, p)).ino;
      const before = Object.fromEntries(['mode', 'tagged', 'touched', 'd/owned', 'other', 'pair1'].map((p) => [p, ino(p)]));

      // Metadata only: no byte of any file changes.
      chmodSync(join(src, 'mode'), 0o600);
      chmodSync(join(src, 'pair1'), 0o640);
      setXattrs(join(src, 'tagged'), { 'user.change': 'after', 'user.new': 'added' });
      removeXattr(join(src, 'tagged'), 'user.drop');
      chmodSync(join(src, 'd'), 0o700);
      removeXattr(join(src, 'd'), 'user.gone');
      utimesSync(join(src, 'touched'), new Date('2011-01-01T00:00:00Z'), new Date('2011-01-01T00:00:00.123Z'));
      chownSync(join(src, 'd', 'owned'), 4321, 4321);
      chmodSync(join(src, 'other'), 0o751);
      expect(itemize(src, dest, ['-aHAXS'])).not.toBe('');

      const r = await runCli(['send', '-a', '--delete', '--checksum', src, `${addr}/ms`, '--json']);
      expect(r.status, r.stderr).toBe(0);
      expect(summaryOf(r.stdout)).toMatchObject({ ownerNotKept: 0, xattrsNotKept: 0 });
      expect(itemize(src, dest, ['-aHAXS'])).toBe('');
      // Set in place where the file is the node's own or already has the owner asked for; a new
      // owner comes with the file sent again, made and chowned by the node. A hard-linked file
      // is sent again too (its link count cannot tell a link outside the tree: SECURITY §8).
      for (const p of ['mode', 'tagged', 'touched', 'other']) expect(ino(p), p).toBe(before[p]);
      expect(ino('d/owned')).not.toBe(before['d/owned']);
      expect(ino('pair1')).not.toBe(before['pair1']);
      expect(ino('pair2')).toBe(ino('pair1'));

      // By size and mtime (no -c) as well: a chmod alone is applied.
      chmodSync(join(src, 'mode'), 0o644);
      const plain = await runCli(['send', '-a', src, `${addr}/ms`, '-q']);
      expect(plain.status, plain.stderr).toBe(0);
      expect(itemize(src, dest, ['-aHAXS'])).toBe('');
      expect(ino('mode')).toBe(before['mode']);
    },
  );

  it.skipIf(!root0)(
    'a node that is not root applies modes, mtimes and user.* attributes, and names the owners it could not set, again',
    async () => {
      const { nobodyRoot, nobody } = await nodeAsNobody('nobody-sync');
      const src = join(work, 'sync-nobody');
      mkdirSync(join(src, 'sub'), { recursive: true });
      writeFileSync(join(src, 'a'), 'a');
      writeFileSync(join(src, 'b'), 'b');
      writeFileSync(join(src, 'sub', 'c'), 'c');
      setXattrs(join(src, 'b'), { 'user.v': '1' });
      const first = await runCli(['send', '-a', src, `${nobody}/n`]);
      expect(first.status, first.stderr).toBe(0);
      // The three files and two directories belong to root here.
      expect(first.stderr).toMatch(/^not kept: owner of 5 files: the node is not root$/m);
      const dest = join(nobodyRoot, 'n', 'sync-nobody');
      expect(itemize(src, dest, ['-rlptHSX'])).toBe('');

      chmodSync(join(src, 'a'), 0o600);
      setXattrs(join(src, 'b'), { 'user.v': '2' });
      chmodSync(join(src, 'sub'), 0o750);
      utimesSync(join(src, 'sub', 'c'), new Date('2012-02-02T00:00:00Z'), new Date('2012-02-02T00:00:00Z'));
      const again = await runCli(['send', '-a', '-c', src, `${nobody}/n`]);
      expect(again.status, again.stderr).toBe(0);
      expect(again.stderr).toMatch(/^not kept: owner of 5 files: the node is not root$/m);
      expect(again.stderr).not.toMatch(/extended attributes/);
      expect(itemize(src, dest, ['-rlptHSX'])).toBe('');
      expect(getXattr(join(dest, 'b'), 'user.v')).toBe('2');
    },
  );
});

describe('issue 32: get -a keeps what send -a keeps', () => {
  it.skipIf(!root0)(
    'hard links, a sparse file, xattrs and owners pulled with get -a: rsync -aHAXS finds nothing; a metadata change at the node is applied by the next get',
    async () => {
      const tree = join(root, 'pull-src');
      mkdirSync(join(tree, 'sub'), { recursive: true });
      randomFile(join(tree, 'sub', 'data'), 200_000);
      linkSync(join(tree, 'sub', 'data'), join(tree, 'data-link'));
      sparseFile(join(tree, 'image'), 32 << 20, [4 << 20]);
      writeFileSync(join(tree, 'tagged'), 'with attributes');
      setXattrs(join(tree, 'tagged'), { 'user.origin': 'node', 'trusted.audit': 'root only' });
      setXattrs(join(tree, 'sub'), { 'user.dir': 'a directory attribute' });
      chmodSync(join(tree, 'tagged'), 0o640);
      symlinkSync('sub/data', join(tree, 'link'));
      chownSync(join(tree, 'sub', 'data'), 1234, 2345);
      chownSync(join(tree, 'image'), 4321, 1);
      lchownSync(join(tree, 'link'), 777, 778);
      chownSync(join(tree, 'sub'), 1234, 1234);

      const back = join(work, 'pulled');
      const r = await runCli(['get', '-a', `${addr}/pull-src`, back, '--json']);
      expect(r.status, r.stderr).toBe(0);
      expect(summaryOf(r.stdout)).toMatchObject({ ownerNotKept: 0, xattrsNotKept: 0 });
      const dest = join(back, 'pull-src');
      expect(itemize(tree, dest, ['-aHAXS'])).toBe('');
      expect(statSync(join(dest, 'data-link')).ino).toBe(statSync(join(dest, 'sub', 'data')).ino);
      expect(statSync(join(dest, 'image')).blocks * 512).toBeLessThan(1 << 20);
      expect(getXattr(join(dest, 'tagged'), 'trusted.audit')).toBe('root only');
      expect(lstatSync(join(dest, 'link')).uid).toBe(777);

      // Metadata only, at the node: the next get -a applies it without fetching the files again.
      chmodSync(join(tree, 'tagged'), 0o600);
      setXattrs(join(tree, 'tagged'), { 'user.origin': 'changed' });
      chmodSync(join(tree, 'sub'), 0o750);
      const before = statSync(join(dest, 'tagged')).ino;
      const again = await runCli(['get', '-a', `${addr}/pull-src`, back, '-q']);
      expect(again.status, again.stderr).toBe(0);
      expect(itemize(tree, dest, ['-aHAXS'])).toBe('');
      expect(statSync(join(dest, 'tagged')).ino).toBe(before);

      // Without -a: this side's owner and no attributes, as rsync without -o -g -X.
      const plain = join(work, 'pulled-plain');
      const p = await runCli(['get', `${addr}/pull-src`, plain, '-q']);
      expect(p.status, p.stderr).toBe(0);
      expect(itemize(tree, join(plain, 'pull-src'), ['-rlptHS'])).toBe('');
      expect(lstatSync(join(plain, 'pull-src', 'sub', 'data')).uid).toBe(0);
    },
  );

  it.skipIf(!root0)('get -a by a user who is not root names the owners and attributes it could not set', async () => {
    const tree = join(root, 'pull-nobody');
    mkdirSync(tree);
    for (const f of ['a', 'b']) {
      writeFileSync(join(tree, f), f);
      chownSync(join(tree, f), 1234, 2345);
    }
    setXattrs(join(tree, 'a'), { 'user.ok': '1', 'trusted.no': '2' });
    chmodSync(process.env.LONGHAUL_TEST_DIR!, 0o755);
    chmodSync(work, 0o755);
    const back = join(work, 'pulled-by-nobody');
    mkdirSync(back);
    chownSync(back, 65534, 65534);
    const child = spawn(process.execPath, [CLI, 'get', '-a', `${addr}/pull-nobody`, back], {
      stdio: ['ignore', 'pipe', 'pipe'],
      uid: 65534,
      gid: 65534,
      env: { ...process.env, HOME: back },
    });
    const r = await finish(child);
    expect(r.status, r.stderr).toBe(0);
    // The two files and their directory; the one file with a trusted.* attribute.
    expect(r.stderr).toMatch(
      /^not kept: owner of 3 files: not root here \(get keeps owners only as root\); extended attributes of 1 file: /m,
    );
    expect(getXattr(join(back, 'pull-nobody', 'a'), 'user.ok')).toBe('1');
    expect(lstatSync(join(back, 'pull-nobody', 'a')).uid).toBe(65534);
  });
});

describe('issue 32: GET asks for metadata only from a node that knows FEATURE_META_SYNC', () => {
  /** The body of the GET `get ARGS` sends to a node offering `features`; the get is then stopped. */
  async function getBody(features: number, args: string[]): Promise<Buffer> {
    const older = await olderNode(features);
    try {
      const child = spawn(process.execPath, [CLI, 'get', ...args, `127.0.0.1:${older.port}/data`, join(work, 'never')], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      for (let i = 0; i < 200 && !older.frames.includes(0x10); i++) await new Promise((r) => setTimeout(r, 25));
      child.kill('SIGKILL');
      await finish(child);
      const at = older.frames.indexOf(0x10);
      expect(at).toBeGreaterThan(0);
      return older.bodies[at]!;
    } finally {
      older.close();
    }
  }
  // u16 path_len, "data", u16 streams, u32 block_size: 12 bytes, then the keep byte if any.
  const BASE = 15 | 256 | 512 | 1024 | 2048;

  it('-a to a node offering bit 16: GET ends with keep 7 (owner, group, xattrs); --owner alone: 1', async () => {
    const all = await getBody(BASE | 65536, ['-a']);
    expect(all.length).toBe(13);
    expect(all[12]).toBe(7);
    expect((await getBody(BASE | 65536, ['--owner']))[12]).toBe(1);
    // Nothing asked: no byte, as before the bit.
    expect((await getBody(BASE | 65536, [])).length).toBe(12);
  });

  it('-a to an older node (no bit 16): the GET it knows, without the byte', async () => {
    expect((await getBody(BASE, ['-a'])).length).toBe(12);
  });
});

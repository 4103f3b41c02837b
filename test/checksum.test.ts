// Change detection (issue 32): size+mtime by default, --checksum by content, and --verify full
// confirming the files it would skip, so that "verified" is never printed over different bytes.
import { spawnSync } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { send, serve, type StorageNode } from '../dist/sdk/index.js';
import { olderNode } from './frames.js';
import { freshDir, randomFile, runCli } from './helpers.js';

let work: string;
let node: StorageNode;

beforeAll(async () => {
  work = freshDir('checksum');
  node = await serve({ root: join(work, 'root'), auth: false });
});

afterAll(async () => {
  await node?.close();
});

/** A tree of a few files, one of them several blocks long. */
function tree(src: string): void {
  mkdirSync(join(src, 'a', 'b'), { recursive: true });
  randomFile(join(src, 'big.bin'), 3 << 20);
  randomFile(join(src, 'a', 'one.bin'), 70_000);
  randomFile(join(src, 'a', 'b', 'two.bin'), 5_000);
  writeFileSync(join(src, 'a', 'note.txt'), 'hello\n');
  writeFileSync(join(src, 'empty'), '');
}

/** Overwrites `bytes` bytes at `at` with other bytes, then puts the mtime back to the nanosecond. */
function editKeepingStamp(path: string, at: number, bytes: number): void {
  const before = statSync(path, { bigint: true });
  const old = readFileSync(path).subarray(at, at + bytes);
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from(old.map((b) => b ^ 0xff)), 0, bytes, at);
  closeSync(fd);
  const ns = before.mtimeNs;
  const stamp = `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
  expect(spawnSync('touch', ['-m', '-d', stamp, path]).status).toBe(0);
  const after = statSync(path, { bigint: true });
  expect([after.size, after.mtimeNs]).toEqual([before.size, before.mtimeNs]);
}

const same = (a: string, b: string): boolean => readFileSync(a).equals(readFileSync(b));

/** rsync as the oracle: what it would still change to make DEST equal SRC, by content. */
function rsyncChanges(src: string, dest: string): string {
  const r = spawnSync('rsync', ['-a', '--checksum', '--dry-run', '--itemize-changes', `${src}/`, `${dest}/`], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

describe('issue 32: change detection (--checksum, --verify full)', () => {
  it('a file edited in place keeping size and mtime: skipped by default, sent by --checksum, rsync agrees after', async () => {
    const dir = freshDir('edit');
    const src = join(dir, 'src');
    tree(src);
    const target = `127.0.0.1:${node.address.port}/edit`;
    const dest = join(work, 'root', 'edit', 'src');
    const first = await runCli(['send', '-q', src, target]);
    expect(first.status, first.stderr).toBe(0);
    expect(rsyncChanges(src, dest)).toBe('');

    editKeepingStamp(join(src, 'big.bin'), 1, 4096);
    // Content the same, only the mtime changed: equal by BLAKE3, and its mtime is set.
    spawnSync('touch', ['-m', '-d', '@1600000000.123456789', join(src, 'a', 'note.txt')]);

    // rsync's default too: size and mtime equal, so the file is taken as unchanged.
    const quick = await runCli(['send', src, target]);
    expect(quick.status, quick.stderr).toBe(0);
    expect(quick.stderr).toMatch(/unchanged: 3 files by size\+mtime \(/);
    expect(same(join(src, 'big.bin'), join(dest, 'big.bin'))).toBe(false);

    const sum = await runCli(['send', '-c', src, target]);
    expect(sum.status, sum.stderr).toBe(0);
    expect(sum.stderr).toMatch(/unchanged: 3 files by BLAKE3 \(/);
    // Without a terminal the summary is a JSON line too, with the same figures.
    const json = JSON.parse(sum.stdout.trim().split('\n').at(-1)!) as { type: string; unchanged: unknown };
    expect(json.type).toBe('summary');
    expect(json.unchanged).toEqual({ files: 3, bytes: 70_000 + 5_000 + 6, by: 'BLAKE3' });
    expect(sum.stderr).not.toMatch(/^0 B sent/m);
    expect(same(join(src, 'big.bin'), join(dest, 'big.bin'))).toBe(true);
    expect(statSync(join(dest, 'a', 'note.txt'), { bigint: true }).mtimeNs).toBe(1600000000123456789n);
    expect(rsyncChanges(src, dest)).toBe('');

    // Now equal: a second --checksum sends nothing.
    const again = await runCli(['send', '--checksum', src, target]);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/unchanged: 4 files by BLAKE3 \(/);
    expect(again.stderr).toMatch(/^0 B sent/m);
  });

  it('--verify full confirms the files it would skip and sends those that differ', async () => {
    const dir = freshDir('verify');
    const src = join(dir, 'src');
    tree(src);
    const target = `127.0.0.1:${node.address.port}/verify`;
    const dest = join(work, 'root', 'verify', 'src');
    expect((await runCli(['send', '-q', src, target])).status).toBe(0);
    editKeepingStamp(join(src, 'a', 'one.bin'), 60_000, 100);

    const full = await runCli(['send', '--verify', 'full', src, target]);
    expect(full.status, full.stderr).toBe(0);
    expect(full.stderr).toMatch(/unchanged: 3 files by size\+mtime, each confirmed by BLAKE3/);
    // The edited file and the empty one (made again each time), not the 3 confirmed in place.
    expect(full.stderr).toMatch(/verified: 2 files read back with the sender's BLAKE3/);
    // Whatever it printed, the copy is the source's, byte for byte.
    for (const f of ['big.bin', 'a/one.bin', 'a/b/two.bin', 'a/note.txt']) expect(same(join(src, f), join(dest, f)), f).toBe(true);
    expect(rsyncChanges(src, dest)).toBe('');

    // With --checksum too: the digests of the comparison are the ones verified (no second read).
    editKeepingStamp(join(src, 'a', 'b', 'two.bin'), 0, 1);
    const both = await runCli(['send', '-c', '--verify', 'full', src, target]);
    expect(both.status, both.stderr).toBe(0);
    expect(both.stderr).toMatch(/unchanged: 3 files by BLAKE3 \(/);
    expect(both.stderr).toMatch(/verified: 2 files read back with the sender's BLAKE3/);
    expect(same(join(src, 'a', 'b', 'two.bin'), join(dest, 'a', 'b', 'two.bin'))).toBe(true);
  });

  it('the SDK: checksum: true, and summary.unchanged says how', async () => {
    const dir = freshDir('sdk');
    const src = join(dir, 'src');
    tree(src);
    const target = `127.0.0.1:${node.address.port}/sdk`;
    const dest = join(work, 'root', 'sdk', 'src');
    const first = await send(src, target);
    expect(first.unchanged).toEqual({ files: 0, bytes: 0, by: 'size+mtime' });
    editKeepingStamp(join(src, 'a', 'b', 'two.bin'), 0, 10);

    const quick = await send(src, target);
    expect(quick.unchanged).toEqual({ files: 4, bytes: (3 << 20) + 70_000 + 5_000 + 6, by: 'size+mtime' });
    expect(quick.bytesMoved).toBe(0);

    const sum = await send(src, target, { checksum: true });
    expect(sum.unchanged).toEqual({ files: 3, bytes: (3 << 20) + 70_000 + 6, by: 'BLAKE3' });
    expect(sum.bytesMoved).toBeGreaterThan(0);
    expect(same(join(src, 'a', 'b', 'two.bin'), join(dest, 'a', 'b', 'two.bin'))).toBe(true);

    // The default check is to the nanosecond: an mtime one nanosecond later is a change.
    const ns = statSync(join(src, 'a', 'note.txt'), { bigint: true }).mtimeNs + 1n;
    const later = `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
    expect(spawnSync('touch', ['-m', '-d', later, join(src, 'a', 'note.txt')]).status).toBe(0);
    const nano = await send(src, target);
    expect(nano.unchanged).toEqual({ files: 3, bytes: (3 << 20) + 70_000 + 5_000, by: 'size+mtime' });
    expect(statSync(join(dest, 'a', 'note.txt'), { bigint: true }).mtimeNs).toBe(ns);

    // Without resume nothing is compared, and nothing is said to be unchanged.
    const all = await send(src, target, { resume: false });
    expect(all.unchanged).toBeNull();
    expect(all.bytesMoved).toBe(all.bytes);
  });

  it('--checksum to a node that does not know it: E_VERSION naming the flag, before anything is sent', async () => {
    // An older node: HELLO_OK with bits 0-3 only, no change detection (bit 5).
    const older = await olderNode(15);
    try {
      const src = freshDir('older');
      writeFileSync(join(src, 'f'), 'x');
      const port = older.port;
      const r = await runCli(['send', '--checksum', src, `127.0.0.1:${port}/d`]);
      expect(r.status).toBe(3);
      expect(r.stderr).toMatch(
        /^longhaul: E_VERSION: the node does not support --checksum .*older longhaul \(fix: upgrade the older end\)$/m,
      );
      // HELLO only: no MANIFEST went out.
      expect(older.frames).toEqual([0x01]);
    } finally {
      older.close();
    }
  });
});

describe('issue 32: get --checksum (the pulling side decides by content)', () => {
  it('a local copy edited keeping size and mtime: kept by a default get, fetched by get -c, and only it travels', async () => {
    const dir = freshDir('pull-sum');
    const src = join(dir, 'src');
    tree(src);
    const target = `127.0.0.1:${node.address.port}/pulled`;
    expect((await runCli(['send', '-q', src, target])).status).toBe(0);
    const onNode = join(work, 'root', 'pulled', 'src');
    const local = join(dir, 'restore');
    const first = await runCli(['get', '-q', `${target}/src`, local]);
    expect(first.status, first.stderr).toBe(0);
    const copy = join(local, 'src');
    expect(rsyncChanges(onNode, copy)).toBe('');

    // The local copy drifts: same size, same mtime, other bytes (bit rot, an in-place edit).
    editKeepingStamp(join(copy, 'a', 'one.bin'), 100, 1000);
    const quick = await runCli(['get', '--json', `${target}/src`, local]);
    expect(quick.status, quick.stderr).toBe(0);
    const q = JSON.parse(quick.stdout.trim().split('\n').at(-1)!) as { bytesMoved: number };
    expect(q.bytesMoved).toBe(0);
    expect(same(join(onNode, 'a', 'one.bin'), join(copy, 'a', 'one.bin'))).toBe(false);

    const sum = await runCli(['get', '-c', '--json', `${target}/src`, local]);
    expect(sum.status, sum.stderr).toBe(0);
    const s = JSON.parse(sum.stdout.trim().split('\n').at(-1)!) as { type: string; bytesMoved: number; bytes: number };
    expect(s.type).toBe('summary');
    // The drifted file came again, in the block(s) holding it; the 3 MiB file, equal by BLAKE3,
    // did not.
    expect(s.bytesMoved).toBeGreaterThanOrEqual(70_000);
    expect(s.bytesMoved).toBeLessThan(s.bytes - (3 << 20) + (1 << 20));
    expect(rsyncChanges(onNode, copy)).toBe('');
    expect(same(join(onNode, 'a', 'one.bin'), join(copy, 'a', 'one.bin'))).toBe(true);
  });
});

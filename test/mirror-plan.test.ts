// A mirror's second run moves what changed (issue 32, pieces): a tree of 2,000 small files
// pushed, 1% of them edited in place (same size), a few added and deleted, pushed again with
// --delete; the bytes moved are those of the changed files (not the 1 MiB blocks they share
// with unchanged ones), and rsync -a --checksum finds nothing to change; the same when the
// second run is killed half-way and run again.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CLI, finish, freshDir, runCli, smallTree } from './helpers.js';

let work: string;
let root: string;
let addr: string;
let node: ChildProcess;

const lastJson = (s: string): Record<string, unknown> => JSON.parse(s.trim().split('\n').at(-1)!) as Record<string, unknown>;

beforeAll(async () => {
  work = freshDir('mirror-plan');
  root = join(work, 'root');
  mkdirSync(root);
  node = spawn(process.execPath, [CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--no-auth', '--json', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const first = await new Promise<string>((resolve) => createInterface({ input: node.stdout! }).once('line', resolve));
  const ev = JSON.parse(first) as { host: string; port: number };
  addr = `${ev.host}:${ev.port}`;
});

afterAll(() => {
  node.kill('SIGKILL');
});

/** What rsync would still change to make `dest` equal `src` (empty: nothing). */
function itemize(src: string, dest: string): string {
  const r = spawnSync('rsync', ['-a', '--checksum', '--delete', '--dry-run', '--itemize-changes', `${src}/`, `${dest}/`], {
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

/** Regular files under `dir` with bytes, sorted, skipping the read-only directory. */
function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const p = join(e.parentPath, e.name);
    if (e.isFile() && !p.includes('read-only dir') && statSync(p).size > 0) out.push(p);
  }
  return out.sort();
}

/** Edits 1% of the files in place (same size, new bytes, a new mtime), adds 5 and deletes 5:
 * the changed files and their bytes. */
function change(src: string): { count: number; bytes: number } {
  const all = files(src);
  let count = 0;
  let bytes = 0;
  for (let i = 0; i < all.length && count < 20; i += Math.floor(all.length / 20)) {
    const size = statSync(all[i]!).size;
    const b = Buffer.alloc(size);
    randomFillSync(b);
    writeFileSync(all[i]!, b);
    count++;
    bytes += size;
  }
  for (let i = 0; i < 5; i++) {
    const b = Buffer.alloc(3000 + i);
    randomFillSync(b);
    writeFileSync(join(src, 'dir 0', `added-${i}`), b);
    count++;
    bytes += b.length;
    rmSync(all[all.length - 1 - 7 * i]!);
  }
  return { count, bytes };
}

describe('issue 32: a mirror re-run moves the changed files, not the blocks they share', () => {
  it('1% edited, 5 added, 5 deleted: bytesMoved under 2x their bytes, the tree then equal (rsync -c)', async () => {
    const src = join(work, 'tree');
    smallTree(src, 2000);
    const first = await runCli(['send', '-a', '--delete', src, `${addr}/m`, '--json']);
    expect(first.status, first.stderr).toBe(0);
    const total = lastJson(first.stdout).bytes as number;
    expect(lastJson(first.stdout).bytesMoved).toBe(total);

    const changed = change(src);
    const second = await runCli(['send', '-a', '--delete', src, `${addr}/m`, '--json']);
    expect(second.status, second.stderr).toBe(0);
    const s = lastJson(second.stdout);
    // 9 MiB of 2,000 files in 1 MiB blocks: whole blocks moved nearly all of it again.
    expect(total).toBeGreaterThan(20 * changed.bytes);
    expect(s.bytesMoved as number).toBeGreaterThan(0);
    expect(s.bytesMoved as number).toBeLessThan(2 * changed.bytes + changed.count * 64);
    expect(itemize(src, join(root, 'm', 'tree'))).toBe('');
  });

  it('the second run killed half-way and run again: the tree equal, the bytes still those of the changes', async () => {
    const src = join(work, 'killed');
    smallTree(src, 2000);
    const first = await runCli(['send', '-a', '--delete', src, `${addr}/k`, '--json']);
    expect(first.status, first.stderr).toBe(0);

    const changed = change(src);
    // Slowed to 4 KB/s (after a 64 KiB burst) so that the kill lands with part of the changes sent.
    const slow = spawn(process.execPath, [CLI, 'send', '-a', '--delete', '--rate', '4K', src, `${addr}/k`, '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise((r) => setTimeout(r, 3000));
    expect(slow.exitCode, 'the slowed run was still running when killed').toBeNull();
    slow.kill('SIGKILL');
    await finish(slow);

    const again = await runCli(['send', '-a', '--delete', src, `${addr}/k`, '--json']);
    expect(again.status, again.stderr).toBe(0);
    const s = lastJson(again.stdout);
    expect(s.bytesMoved as number).toBeLessThan(2 * changed.bytes + changed.count * 64);
    expect(itemize(src, join(root, 'k', 'killed'))).toBe('');
  });
});

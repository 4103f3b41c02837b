// `longhaul compare LOCAL HOST:PORT/PATH` (issue 32): the node lists and hashes its tree
// (TREE_SUMS), the client hashes the local one, and the differences are those the local
// compare reports for the same two trees, with the same exit statuses.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { olderNode } from './frames.js';
import { CLI, freshDir, jsonLines, randomFile, runCli } from './helpers.js';

let work: string;
let root: string;
let node: string;
let tokenFile: string;
const nodes: ChildProcess[] = [];

async function startNode(dir: string): Promise<string> {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--root', dir, '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--json', '--log-level', 'warn'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  nodes.push(child);
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  const ev = JSON.parse(first) as { host: string; port: number };
  return `${ev.host}:${ev.port}`;
}

/** A file rewritten in place with the same size and the same mtime, to the nanosecond. */
function editKeepingStamp(path: string): void {
  const st = statSync(path, { bigint: true });
  const bytes = readFileSync(path);
  bytes[bytes.length >> 1] ^= 0x5a;
  writeFileSync(path, bytes);
  expect(
    spawnSync('touch', ['-d', `@${st.mtimeNs / 1_000_000_000n}.${String(st.mtimeNs % 1_000_000_000n).padStart(9, '0')}`, path]).status,
  ).toBe(0);
  expect(statSync(path, { bigint: true }).mtimeNs).toBe(st.mtimeNs);
}

beforeAll(async () => {
  work = freshDir('compare-node');
  tokenFile = join(work, 'token');
  writeFileSync(tokenFile, 'compare tests share this token 0123456789\n', { mode: 0o600 });
  const src = join(work, 'src');
  mkdirSync(join(src, 'd', 'e'), { recursive: true });
  randomFile(join(src, 'big'), (3 << 20) + 17);
  for (let i = 0; i < 40; i++) writeFileSync(join(src, 'd', `f${i}`), `file ${i}\n`.repeat(i));
  writeFileSync(join(src, 'd', 'e', 'deep'), 'deep\n');
  writeFileSync(join(src, 'mode'), 'mode\n');
  symlinkSync('d/e/deep', join(src, 'link'));
  // The node's copy, made by cp -a: identical (mtimes to the nanosecond, modes, links).
  root = join(work, 'root');
  mkdirSync(root);
  expect(spawnSync('cp', ['-a', src, join(root, 'tree')]).status).toBe(0);
  writeFileSync(join(work, 'outside'), 'a secret outside the root\n');
  node = await startNode(root);
});

afterAll(() => {
  for (const n of nodes) n.kill('SIGKILL');
});

const auth = (): string[] => ['--token-file', tokenFile];

describe('compare LOCAL HOST:PORT/PATH, the node hashing its side (issue 32)', () => {
  it('identical trees: exit 0, as the local compare; a single file compares too', async () => {
    const r = await runCli(['compare', join(work, 'src'), `${node}/tree`, ...auth()]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('identical (entries, bytes, modes, mtimes, link targets)\n');
    const j = await runCli(['compare', join(work, 'src'), `${node}/tree`, '--json', ...auth()]);
    expect(jsonLines(j.stdout)).toEqual([{ type: 'summary', identical: true, differences: 0 }]);
    const one = await runCli(['compare', join(work, 'src', 'big'), `${node}/tree/big`, ...auth()]);
    expect(one.status, one.stderr).toBe(0);
  });

  it('an edit keeping size and mtime, a missing file, an extra file, a mode change and a new link target: each as the local compare reports it (exit 1)', async () => {
    const copy = join(root, 'changed');
    expect(spawnSync('cp', ['-a', join(root, 'tree'), copy]).status).toBe(0);
    editKeepingStamp(join(copy, 'big'));
    rmSync(join(copy, 'd', 'f7'));
    writeFileSync(join(copy, 'd', 'e', 'new'), 'new\n');
    chmodSync(join(copy, 'mode'), 0o600);
    rmSync(join(copy, 'link'));
    symlinkSync('d/f1', join(copy, 'link'));
    // Directory mtimes moved with the edits: left out here, as a mirror's user would.
    const remote = await runCli(['compare', join(work, 'src'), `${node}/changed`, '--no-dir-mtimes', ...auth()]);
    const local = await runCli(['compare', join(work, 'src'), copy, '--no-dir-mtimes']);
    expect(remote.status, remote.stderr).toBe(1);
    expect(local.status).toBe(1);
    expect(remote.stdout).toBe(local.stdout);
    expect(remote.stderr).toBe('5 differences\n');
    expect(remote.stdout.split('\n')).toEqual([
      'content big',
      'missing d/f7',
      'target link: expected d/e/deep, found d/f1',
      `mode mode: expected ${(statSync(join(work, 'src', 'mode')).mode & 0o7777).toString(8)}, found 600`,
      'extra d/e/new',
      '',
    ]);
    const j = await runCli(['compare', join(work, 'src'), `${node}/changed`, '--no-dir-mtimes', '--json', ...auth()]);
    const lj = await runCli(['compare', join(work, 'src'), copy, '--no-dir-mtimes', '--json']);
    expect(j.status).toBe(1);
    expect(j.stdout).toBe(lj.stdout);
    expect(jsonLines(j.stdout).at(-1)).toEqual({ type: 'summary', identical: false, differences: 5 });
    // With directory mtimes (the default) both report the same too.
    const withDirs = await runCli(['compare', join(work, 'src'), `${node}/changed`, ...auth()]);
    expect(withDirs.stdout).toBe((await runCli(['compare', join(work, 'src'), copy])).stdout);
    // A file against a directory: one entry, its kind.
    const kind = await runCli(['compare', join(work, 'src', 'big'), `${node}/changed/d`, ...auth()]);
    expect(kind.status).toBe(1);
    expect(kind.stdout).toBe('kind big: expected file, found dir\n');
  });

  it('a path leaving the root (.., a planted symlink) or missing: its error code, nothing read outside', async () => {
    const up = await runCli(['compare', join(work, 'src'), `${node}/../outside`, ...auth()]);
    expect(up.status).toBe(5);
    expect(up.stderr).toMatch(/^longhaul: E_PATH_ESCAPE: /m);
    symlinkSync(work, join(root, 'planted'));
    symlinkSync(join(work, 'outside'), join(root, 'tree-link'));
    for (const path of ['planted', 'planted/src', 'tree-link']) {
      const r = await runCli(['compare', join(work, 'src'), `${node}/${path}`, '--json', ...auth()]);
      expect(r.status, path).toBe(5);
      expect(jsonLines(r.stdout).at(-1), path).toMatchObject({ code: 'E_PATH_ESCAPE' });
    }
    // A link inside a compared tree is a link: its target is compared, never followed.
    mkdirSync(join(root, 'holder'));
    symlinkSync(join(work, 'outside'), join(root, 'holder', 'secret'));
    const inside = await runCli(['compare', join(work, 'src', 'd'), `${node}/holder`, '--json', ...auth()]);
    expect(inside.status).toBe(1);
    expect(inside.stdout).not.toContain('secret outside');
    expect(jsonLines(inside.stdout)).toContainEqual({ type: 'difference', path: 'secret', what: 'extra' });
    const missing = await runCli(['compare', join(work, 'src'), `${node}/nothing`, ...auth()]);
    expect(missing.status).toBe(4);
    expect(missing.stderr).toMatch(/^longhaul: E_NOT_FOUND: /m);
    // The node's own directory is not a tree to compare.
    const state = await runCli(['compare', join(work, 'src'), `${node}/.longhaul`, ...auth()]);
    expect(state.stderr).toMatch(/^longhaul: E_PATH_ESCAPE: /m);
    // Without the token: refused as every request is.
    const noAuth = await runCli(['compare', join(work, 'src'), `${node}/tree`]);
    expect(noAuth.stderr).toMatch(/^longhaul: E_AUTH: /m);
  });

  it('over TLS: --tls-pin compares as in the clear; without it E_TLS', async () => {
    const tlsRoot = join(work, 'tls-root');
    mkdirSync(tlsRoot);
    expect(spawnSync('cp', ['-a', join(work, 'src'), join(tlsRoot, 'tree')]).status).toBe(0);
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--root', tlsRoot, '--listen', '127.0.0.1:0', '--tls', '--token-file', tokenFile, '--json', '--log-level', 'warn'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    nodes.push(child);
    const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
    const ev = JSON.parse(first) as { host: string; port: number; tls: { fingerprint: string } };
    const addr = `${ev.host}:${ev.port}`;
    const ok = await runCli(['compare', join(work, 'src'), `${addr}/tree`, '--tls-pin', ev.tls.fingerprint, ...auth()]);
    expect(ok.status, ok.stderr).toBe(0);
    const plain = await runCli(['compare', join(work, 'src'), `${addr}/tree`, ...auth()]);
    expect(plain.status).toBe(5);
    expect(plain.stderr).toMatch(/^longhaul: E_TLS: /m);
  });

  it('a node without TREE_SUMS (an older longhaul): E_VERSION, and no request sent', async () => {
    // HELLO_OK offering bits 0..5 (63): everything but TREE_SUMS.
    const older = await olderNode(63);
    try {
      const port = older.port;
      const r = await runCli(['compare', join(work, 'src'), `127.0.0.1:${port}/tree`]);
      expect(r.status).toBe(3);
      expect(r.stderr).toMatch(
        /^longhaul: E_VERSION: the node does not support compare against a node .*older longhaul \(fix: upgrade the older end\)$/m,
      );
      expect(older.frames).toEqual([0x01]);
    } finally {
      older.close();
    }
  });
});

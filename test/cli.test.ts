// End to end through the CLI: `longhaul serve` and `longhaul send --json` as separate
// processes, a 256 MiB random file and a 20,000-file tree, documented exit statuses.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees } from '../dist/sdk/index.js';
import { freshDir, randomFile, smallTree } from './helpers.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');
let work: string;
let server: ChildProcess;
let address: string;
let root: string;

function run(args: string[]): Promise<{ status: number | null; lines: Record<string, unknown>[]; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => {
      const lines = out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ status, lines, stderr });
    });
  });
}

beforeAll(async () => {
  work = freshDir('cli');
  mkdirSync(join(work, 'big'));
  randomFile(join(work, 'big', 'random.bin'), 256 << 20);
  mkdirSync(join(work, 'tree', 'small'), { recursive: true });
  smallTree(join(work, 'tree', 'small'), 20_000);
  root = join(work, 'root');
  server = spawn(
    process.execPath,
    [CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--no-auth', '--json', '--log-level', 'warn'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const first = await new Promise<string>((resolve) => createInterface({ input: server.stdout! }).once('line', resolve));
  const ev = JSON.parse(first) as { type: string; host: string; port: number };
  expect(ev.type).toBe('listening');
  address = `${ev.host}:${ev.port}`;
});

afterAll(() => {
  server?.kill('SIGTERM');
});

describe('the longhaul CLI', () => {
  it('sends a 256 MiB file with --json: progress lines, then a summary; the copy is identical', async () => {
    const r = await run(['send', join(work, 'big', 'random.bin'), `${address}/big`, '--json', '--streams', '8']);
    expect(r.status, r.stderr).toBe(0);
    const summary = r.lines.at(-1)!;
    expect(summary.type).toBe('summary');
    expect(summary.bytes).toBe(256 << 20);
    expect(summary.streams).toBe(8);
    expect(summary.sendfileBlocks).toBe(256); // 1 MiB blocks
    expect(r.lines.slice(0, -1).every((l) => l.type === 'progress')).toBe(true);
    expect(await compareTrees(join(work, 'big'), join(root, 'big'))).toEqual([]);
  });

  it('--verify full: the node reads the file back and checks its BLAKE3; the summary says so', async () => {
    const r = await run(['send', join(work, 'big', 'random.bin'), `${address}/big-full`, '--verify', 'full']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.lines.at(-1)).toMatchObject({ type: 'summary', verify: 'full', verifiedFiles: 1 });
    expect(r.stderr).toMatch(/verified: 1 file read back with the sender's BLAKE3/);
    expect(await compareTrees(join(work, 'big'), join(root, 'big-full'))).toEqual([]);
    const bad = await run(['send', join(work, 'big', 'random.bin'), `${address}/x`, '--verify', 'most']);
    expect(bad.status).toBe(2);
  });

  it('sends a tree of 20,000 small files over 1 stream; without a TTY it prints JSON lines', async () => {
    const r = await run(['send', join(work, 'tree', 'small'), `${address}/tree`, '--streams', '1']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.lines.at(-1)).toMatchObject({ type: 'summary', files: 20_001, symlinks: 3, streams: 1 });
    expect(r.stderr).toMatch(/sent .* in 20,001 files/);
    expect(await compareTrees(join(work, 'tree'), join(root, 'tree'))).toEqual([]);
  });

  it('compare: the sent tree is identical (exit 0); a changed byte and mode and an extra file are listed (exit 1); a missing tree exits 4; two files compare too', async () => {
    const same = await run(['compare', join(work, 'tree'), join(root, 'tree'), '--json']);
    expect(same.status, same.stderr).toBe(0);
    expect(same.lines).toEqual([{ type: 'summary', identical: true, differences: 0 }]);
    // A copy of part of the received tree, then changed; mtimes put back (touch keeps nanoseconds).
    const sent = join(work, 'tree', 'small', 'dir 0');
    const copy = join(work, 'changed');
    execFileSync('cp', ['-a', join(root, 'tree', 'small', 'dir 0'), copy]);
    const f2 = join(copy, 'f2');
    const bytes = readFileSync(f2);
    bytes[bytes.length - 1]! ^= 1;
    writeFileSync(f2, bytes);
    const mode = (statSync(f2).mode & 0o7777).toString(8);
    chmodSync(f2, 0o600);
    writeFileSync(join(copy, 'new'), '');
    execFileSync('touch', ['-r', join(sent, 'f2'), f2]);
    execFileSync('touch', ['-r', sent, copy]);
    const diff = await run(['compare', sent, copy, '--json']);
    expect(diff.status, diff.stderr).toBe(1);
    expect(diff.lines).toEqual([
      { type: 'difference', path: 'f2', what: 'mode', expected: mode, actual: '600' },
      { type: 'difference', path: 'f2', what: 'content' },
      { type: 'difference', path: 'new', what: 'extra' },
      { type: 'summary', identical: false, differences: 3 },
    ]);
    expect((await run(['compare', join(work, 'tree'), join(work, 'nothing here')])).status).toBe(4);
    // Two files: compared as one entry, under the first one's name.
    expect((await run(['compare', join(sent, 'f3'), join(copy, 'f3'), '--json'])).status).toBe(0);
    const files = await run(['compare', join(sent, 'f2'), f2, '--json']);
    expect(files.status).toBe(1);
    expect(files.lines.slice(0, -1)).toEqual([
      { type: 'difference', path: 'f2', what: 'mode', expected: mode, actual: '600' },
      { type: 'difference', path: 'f2', what: 'content' },
    ]);
  });

  it('exits 3 with E_CONNECT when no node listens, and says so in one line', async () => {
    const r = await run(['send', join(work, 'big'), '127.0.0.1:1', '--json']);
    expect(r.status).toBe(3);
    expect(r.lines.at(-1)).toMatchObject({ type: 'error', code: 'E_CONNECT' });
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^longhaul: E_CONNECT: /);
  });

  it('exits 2 on usage errors and 4 on a missing source', async () => {
    expect((await run(['send', join(work, 'big')])).status).toBe(2);
    expect((await run(['send', join(work, 'big'), 'nowhere:'])).status).toBe(2);
    // issue 32: a target without a port names serve's default port, 7878.
    const portless = await run(['send', join(work, 'big'), 'nowhere.invalid/x', '--json']);
    expect(portless.status).toBe(3);
    expect(portless.lines.at(-1)).toMatchObject({ code: 'E_CONNECT' });
    expect(String((portless.lines.at(-1) as { message: string }).message)).toMatch(/nowhere\.invalid:7878/);
    expect((await run(['send', join(work, 'big'), address, '--streams', '0'])).status).toBe(2);
    const r = await run(['send', join(work, 'missing'), address, '--json']);
    expect(r.status).toBe(4);
    expect(r.lines.at(-1)).toMatchObject({ code: 'E_NOT_FOUND' });
  });

  it('exits 5 when the node refuses the destination', async () => {
    const r = await run(['send', join(work, 'big'), `${address}/a/../../up`, '--json']);
    expect(r.status).toBe(5);
    expect(r.lines.at(-1)).toMatchObject({ code: 'E_PATH_ESCAPE' });
  });
});

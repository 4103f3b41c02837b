// Issue 35 items 1, 2 and 11, through the CLI as a process: a reader that goes away (`| head`,
// a closed stderr) ends output quietly and never a transfer; -q prints nothing on success, the
// default summary is short and no wider than 120 columns, -v adds the detail; and `--version` or
// a `send` off a terminal load only what they use.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CLI, freshDir, randomFile, runCli } from './helpers.js';

let work: string;
let addr: string;
/** The node `copy` pushes to (A lists it with --copy-to). */
let addrB: string;
const nodes: ChildProcess[] = [];
/** Each node's stderr (pino JSON lines), kept apart so that their lines do not interleave. */
const nodeLogs: string[] = [];

/** `longhaul serve` on a free port; its address. */
async function startNode(root: string, extra: string[] = []): Promise<string> {
  const node = spawn(process.execPath, [CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--no-auth', '--json', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  nodes.push(node);
  const i = nodeLogs.push('') - 1;
  node.stderr!.on('data', (d) => (nodeLogs[i] += d));
  const first = await new Promise<string>((resolve) => createInterface({ input: node.stdout! }).once('line', resolve));
  const { host, port } = JSON.parse(first) as { host: string; port: number };
  return `${host}:${port}`;
}

beforeAll(async () => {
  work = freshDir('cli-pipes');
  mkdirSync(join(work, 'src', 'tree', 'sub'), { recursive: true });
  randomFile(join(work, 'src', 'data.bin'), 8 << 20);
  randomFile(join(work, 'src', 'tree', 'sub', 'a.bin'), 100_000);
  writeFileSync(join(work, 'src', 'one'), 'x');
  addrB = await startNode(join(work, 'root-b'));
  addr = await startNode(join(work, 'root'), ['--copy-to', addrB]);
  // What the listing commands list and read.
  expect((await runCli(['send', join(work, 'src', 'tree'), `${addr}/in`, '-q'])).status).toBe(0);
});

afterAll(() => {
  for (const n of nodes) n.kill('SIGTERM');
});

/** `sh -c SCRIPT` with "$1" the node binary, "$2" the CLI and `args` after them. */
function sh(script: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('sh', ['-c', script, 'sh', process.execPath, CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The CLI's own status (not head's) with its stdout piped into `head -n LINES`; its stderr. */
function pipedInto(lines: number, args: string[]): { status: number; stdout: string; stderr: string } {
  const r = sh(`{ "$@"; echo "status=$?" >&2; } | head -n ${lines}`, ...args);
  const m = /status=(\d+)\n$/.exec(r.stderr);
  expect(m, r.stderr).toBeTruthy();
  return { status: Number(m![1]), stdout: r.stdout, stderr: r.stderr.slice(0, m!.index) };
}

/** Whether a node logged a successful end of the transfer to or from PATH (waiting a little for the log to arrive). */
async function endLogged(path: string): Promise<boolean> {
  for (let i = 0; i < 50 && !ended(path); i++) await new Promise((r) => setTimeout(r, 100));
  return ended(path);
}

function ended(path: string): boolean {
  // Whole lines only: the last one may still be arriving.
  return nodeLogs
    .flatMap((log) => log.split('\n').slice(0, -1))
    .map((l) => JSON.parse(l) as { event?: string; path?: string; outcome?: string })
    .some((l) => l.event === 'transfer:end' && l.path === path && l.outcome === 'ok');
}

const noStack = (s: string): void => {
  expect(s).not.toMatch(/EPIPE|Error: write|node:events|at .*\(node:/);
};

describe('issue 35: a closed stdout or stderr', () => {
  const listing = (): [string, string[], number][] => [
    ['config', ['config'], 0],
    ['--help', ['--help'], 0],
    ['send --help', ['send', '--help'], 0],
    ['doctor', ['doctor'], 0],
    ['ls', ['ls', `${addr}/in/tree/sub`], 0],
    ['stats', ['stats', addr], 0],
    ['compare (trees that differ: 1, as documented)', ['compare', join(work, 'src'), join(work, 'src', 'tree')], 1],
    ['readv', ['readv', addr, 'in/tree/sub/a.bin:0:100000'], 0],
  ];

  it('config, --help, doctor, ls, stats, compare and readv into `head -n 1` and `head -n 0`: no stack, their own status', () => {
    for (const [name, args, status] of listing()) {
      for (const lines of [1, 0]) {
        const r = pipedInto(lines, args);
        noStack(r.stderr);
        expect(r.status, `${name} | head -n ${lines}: ${r.stderr}`).toBe(status);
        if (lines === 1 && name !== 'readv') expect(r.stdout.split('\n').filter(Boolean).length, name).toBeLessThanOrEqual(1);
      }
    }
  });

  it('send, get and copy into `head`: the transfer completes byte for byte, status 0, the node logs its end', async () => {
    const data = readFileSync(join(work, 'src', 'data.bin'));
    // --json: a progress line on stdout every 500 ms and the summary, all into a closed pipe.
    const s = pipedInto(0, ['send', join(work, 'src', 'data.bin'), `${addr}/piped`, '--json']);
    noStack(s.stderr);
    expect(s.status, s.stderr).toBe(0);
    expect(readFileSync(join(work, 'root', 'piped', 'data.bin')).equals(data)).toBe(true);
    expect(await endLogged('piped')).toBe(true);

    const h = pipedInto(1, ['send', join(work, 'src', 'data.bin'), `${addr}/head1`]);
    noStack(h.stderr);
    expect(h.status, h.stderr).toBe(0);
    expect(readFileSync(join(work, 'root', 'head1', 'data.bin')).equals(data)).toBe(true);

    const dest = join(work, 'got');
    const g = pipedInto(0, ['get', `${addr}/piped/data.bin`, dest, '--json']);
    noStack(g.stderr);
    expect(g.status, g.stderr).toBe(0);
    expect(readFileSync(join(dest, 'data.bin')).equals(data)).toBe(true);

    const c = pipedInto(0, ['copy', `${addr}/piped/data.bin`, `${addrB}/copied`, '--json']);
    noStack(c.stderr);
    expect(c.status, c.stderr).toBe(0);
    expect(readFileSync(join(work, 'root-b', 'copied', 'data.bin')).equals(data)).toBe(true);
  });

  it('send with stderr closed (2>&-) or into a closed pipe (2>&1 >/dev/null | head -n 0): completes, status 0', async () => {
    const data = readFileSync(join(work, 'src', 'data.bin'));
    const closed = sh('"$@" 2>&-; echo "status=$?"', 'send', join(work, 'src', 'data.bin'), `${addr}/noerr`);
    expect(closed.stdout).toMatch(/status=0/);
    expect(readFileSync(join(work, 'root', 'noerr', 'data.bin')).equals(data)).toBe(true);
    const piped = sh(
      '{ "$@" 2>&1 >/dev/null; echo "status=$?" >&3; } 3>&2 | head -n 0',
      'send',
      join(work, 'src', 'data.bin'),
      `${addr}/errpipe`,
      '-v',
    );
    expect(piped.stderr).toMatch(/^status=0\n$/);
    expect(readFileSync(join(work, 'root', 'errpipe', 'data.bin')).equals(data)).toBe(true);
    expect(await endLogged('errpipe')).toBe(true);
  });
});

describe('issue 35: -q is quiet, the default is short, -v adds the detail', () => {
  it('-q: send, get, copy, compare and readv -o print nothing on success', async () => {
    for (const args of [
      ['send', join(work, 'src', 'one'), `${addr}/quiet`, '-q'],
      ['get', `${addr}/quiet/one`, join(work, 'quiet-got'), '-q'],
      ['copy', `${addr}/quiet/one`, `${addrB}/quiet-copied`, '-q'],
      ['compare', join(work, 'src', 'one'), join(work, 'quiet-got', 'one'), '-q'],
      ['readv', addr, 'quiet/one:0:1', '-o', join(work, 'readv.out'), '-q'],
    ]) {
      const r = await runCli(args);
      expect({ args, ...r }).toEqual({ args, status: 0, stdout: '', stderr: '' });
    }
    // compare -q: the status alone says they differ.
    const differ = await runCli(['compare', join(work, 'src'), join(work, 'src', 'tree'), '-q']);
    expect(differ).toEqual({ status: 1, stdout: '', stderr: '' });
  });

  it('-q still prints the error line; -q --json prints the summary object alone', async () => {
    const bad = await runCli(['send', join(work, 'src', 'no such file'), `${addr}/x`, '-q']);
    expect(bad.status).toBe(4);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^longhaul: E_NOT_FOUND: .*\n$/);
    const json = await runCli(['send', join(work, 'src', 'one'), `${addr}/quiet-json`, '-q', '--json']);
    expect(json.status, json.stderr).toBe(0);
    expect(json.stderr).toBe('');
    const lines = json.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ type: 'summary', bytes: 1 });
  });

  it('default: the sent and verified lines, none over 120 columns even with a long path; -v adds the scheduler and placement', async () => {
    // A special file deep under long names: the summary names it (skipped), the longest line it prints.
    const deep = join(work, 'long', ...Array.from({ length: 6 }, (_, i) => `a-rather-long-directory-name-number-${i}`));
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(deep, 'data'), 'some bytes');
    expect(spawnSync('mkfifo', [join(deep, 'a-fifo-with-a-long-name-too')]).status).toBe(0);
    const r = await runCli(['send', join(work, 'long'), `${addr}/long`]);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^sent \d+ B in 1 file/);
    expect(r.stderr).toMatch(/^verified: /m);
    expect(r.stderr).toMatch(/^skipped 1 special files \(first: /m);
    expect(r.stderr).not.toMatch(/^(scheduler|placement|fast paths|limited by):/m);
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(120);
    expect(Math.max(...lines.map((l) => l.length))).toBeGreaterThan(100);

    const v = await runCli(['send', join(work, 'long'), `${addr}/long-v`, '-v']);
    expect(v.status, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/^scheduler: /m);
    expect(v.stderr).toMatch(/^placement: /m);
    expect(v.stderr).toMatch(/^limited by: /m);
    for (const l of v.stderr.trimEnd().split('\n')) expect(l.length, l).toBeLessThanOrEqual(120);

    const g = await runCli(['get', `${addr}/long-v`, join(work, 'long-got'), '-v']);
    expect(g.status, g.stderr).toBe(0);
    expect(g.stderr).toMatch(/^received .*\n\d+ blocks?; the receiving side took /);
    for (const l of g.stderr.trimEnd().split('\n')) expect(l.length, l).toBeLessThanOrEqual(120);
  });
});

describe('issue 35: start-up loads only what the command uses', () => {
  /** The CommonJS and ES modules a run loaded, from Node's own debug output. */
  function loaded(args: string[]): string {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NODE_DEBUG: 'module,esm' } });
    expect(r.status, r.stderr.slice(-2000)).toBe(0);
    return r.stderr;
  }

  it('--version loads no chunk, no commander, no addon', () => {
    const out = loaded(['--version']);
    expect(out).toMatch(/dist\/cli\.js/);
    expect(out).not.toMatch(/cli-chunk-|commander|binding\.cjs|\.node\b|pino|zod/);
  });

  it('send off a terminal loads the addon but not pino, prom-client, cli-progress or the report', () => {
    const out = loaded(['send', join(work, 'src', 'one'), `${addr}/loaded`, '-q']);
    expect(out).toMatch(/binding\.cjs/);
    expect(out).not.toMatch(/pino|prom-client|cli-progress|cli-chunk-report|cli-chunk-serve/);
  });
});

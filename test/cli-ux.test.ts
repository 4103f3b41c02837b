// What a person at a terminal sees: the progress bar read off a tmux screen (with a bar per
// stream), the node's JSON log lines, one clear error line and --debug's chain of causes, and
// docs/ERRORS.md covering every code.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ERROR_CODES, exitCodeFor, fixFor, send, serve, type StorageNode } from '../dist/sdk/index.js';
import { freshDir, randomFile } from './helpers.js';

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist', 'cli.js');
let work: string;
let node: StorageNode;

beforeAll(async () => {
  work = freshDir('cli-ux');
  mkdirSync(join(work, 'src'));
  randomFile(join(work, 'src', 'data.bin'), 80 << 20);
  // 40 MiB/s: the 80 MiB file takes about two seconds, long enough to read the bar mid-way.
  node = await serve({ root: join(work, 'root'), auth: false, rate: '40M' });
});

afterAll(async () => {
  await node?.close();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('progress on a terminal', () => {
  it('tmux shows the whole-job bar with totals, rate and ETA, a bar per stream, then the summary', async () => {
    const socket = `longhaul-test-${process.pid}`;
    const tmux = (...args: string[]): string => spawnSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' }).stdout;
    const cmd = `${process.execPath} ${CLI} send ${join(work, 'src', 'data.bin')} ${node.url}/tty --streams 2 --streams-detail; echo EXIT=$?; sleep 60`;
    const started = spawnSync('tmux', ['-L', socket, 'new-session', '-d', '-s', 'send', '-x', '150', '-y', '20', cmd], {
      encoding: 'utf8',
    });
    expect(started.status, started.stderr).toBe(0);
    const screens: string[] = [];
    try {
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const screen = tmux('capture-pane', '-p', '-t', 'send');
        screens.push(screen);
        if (/EXIT=\d+/.test(screen)) break;
        await sleep(150);
      }
    } finally {
      spawnSync('tmux', ['-L', socket, 'kill-server']);
    }
    const last = screens.at(-1)!;
    expect(last, last).toMatch(/EXIT=0/);
    expect(last).toMatch(/sent 80\.0 MiB in 1 file/);
    // Mid-way: a bar below 100% with bytes of the pre-scanned total, files (the one in flight
    // named), a rate, the time so far and an ETA.
    const bar =
      /(\d+)% \| ([\d.]+ [KMG]?i?B) \/ 80\.0 MiB \| [01]\/1 files(, 1 open)? \| [\d.]+ [KMG]?i?B\/s \| ([\d.]+s) elapsed, ETA (\S+)/;
    const midway = screens.map((s) => bar.exec(s)).find((m) => m && Number(m[1]) > 0 && Number(m[1]) < 100);
    expect(midway, screens.join('\n----\n')).toBeTruthy();
    expect(midway![5]).toMatch(/^\d+(\.\d)?s$|^\d+m\d\ds$/);
    expect(
      screens.some((s) => bar.exec(s)?.[3] === ', 1 open'),
      'the file under way is shown in flight',
    ).toBe(true);
    // issue 35: the bar ends full and done, its last rate the summary's (not a smoothed guess).
    const end = /100% \| 80\.0 MiB \/ 80\.0 MiB \| 1\/1 files \| ([\d.]+ [KMG]?i?B\/s) \| [\d.]+s elapsed, done/.exec(last);
    expect(end, last).toBeTruthy();
    expect(/sent 80\.0 MiB in 1 file in [\d.]+ s: ([\d.]+ [KMG]?i?B\/s) over/.exec(last)?.[1]).toBe(end![1]);
    // --streams-detail: one line per stream under the total, each with its bytes and rate.
    const withStreams = screens.find((s) => /stream 0 \| [\d.]+ [KMG]?i?B \| [\d.]+ [KMG]?i?B\/s/.test(s) && /stream 1 \| /.test(s));
    expect(withStreams, screens.join('\n----\n')).toBeTruthy();
  });
});

/** `longhaul serve` on a free port with `--log-level LEVEL`, its stderr collected. */
async function loggedNode(dir: string, level: string): Promise<{ child: ChildProcess; address: string; stderr: () => string }> {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--root', join(work, dir), '--listen', '127.0.0.1:0', '--no-auth', '--json', '--log-level', level],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  const { host, port } = JSON.parse(first) as { host: string; port: number };
  return { child, address: `${host}:${port}`, stderr: () => stderr };
}

describe('the node log', () => {
  it('writes pino JSON lines to stderr: listening, each transfer start and end, draining, stopped', async () => {
    const { child, address, stderr } = await loggedNode('logged', 'debug');
    await send(join(work, 'src', 'data.bin'), `${address}/logged`);
    // Events come from the node's table, polled every 250 ms.
    await sleep(600);
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('close', resolve));
    const lines = stderr()
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            level: number;
            time: number;
            name: string;
            event: string;
            msg: string;
            outcome?: string;
            bytesDone?: number;
            peer?: string;
          },
      );
    const events = lines.map((l) => l.event);
    expect(events[0]).toBe('listening');
    expect(events).toContain('transfer:start');
    expect(events.at(-2)).toBe('draining');
    expect(events.at(-1)).toBe('stopped');
    const end = lines.find((l) => l.event === 'transfer:end')!;
    expect(end).toMatchObject({ level: 30, name: 'longhaul', outcome: 'ok', bytesDone: 80 << 20, peer: '127.0.0.1' });
    for (const l of lines) expect(typeof l.time).toBe('number');
  });

  it('--log-level warn keeps the info lines out', async () => {
    const { child, stderr } = await loggedNode('quiet', 'warn');
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('close', resolve));
    expect(stderr()).toBe('');
  });
});

describe('errors', () => {
  it('one line with the code, what and where, and what to do; --debug adds the chain of causes', () => {
    const missing = join(work, 'no-such-source');
    const plain = spawnSync(process.execPath, [CLI, 'send', missing, '127.0.0.1:1'], { encoding: 'utf8' });
    expect(plain.status).toBe(4);
    expect(plain.stderr).toBe(`longhaul: E_NOT_FOUND: source not found: ${JSON.stringify(missing)} (fix: ${fixFor('E_NOT_FOUND')})\n`);
    const debug = spawnSync(process.execPath, [CLI, '--debug', 'send', missing, '127.0.0.1:1'], { encoding: 'utf8' });
    expect(debug.status).toBe(4);
    const lines = debug.stderr.split('\n');
    expect(lines[0]).toBe(plain.stderr.trim());
    expect(lines[1]).toMatch(/^error: LonghaulError: source not found/);
    expect(debug.stderr).toMatch(/\n {4}at /);
    expect(debug.stderr).toMatch(/\ncaused by: Error: E_NOT_FOUND: source not found/);
  });

  it('docs/ERRORS.md has a row for every code, with the exit status the CLI uses, and the engine raises no other', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'ERRORS.md'), 'utf8');
    const rows = new Map([...doc.matchAll(/^\| `(E_[A-Z_]+)` \| (\d+) \|/gm)].map((m) => [m[1]!, Number(m[2])]));
    for (const code of ERROR_CODES) expect(rows.get(code), code).toBe(exitCodeFor(code));
    expect([...rows.keys()].sort()).toEqual([...ERROR_CODES].sort());
    // Every code string in the engine's and the binding's source is one the SDK knows.
    const sources = ['crates/longhaul-core/src', 'crates/longhaul-node/src'].flatMap((d) =>
      readdirSync(join(ROOT, d), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.rs'))
        .map((f) => readFileSync(join(ROOT, d, f), 'utf8')),
    );
    const engineCodes = new Set(sources.flatMap((s) => [...s.matchAll(/"(E_[A-Z_]+)/g)].map((m) => m[1]!)));
    expect(engineCodes.size).toBeGreaterThan(15);
    for (const code of engineCodes) expect(ERROR_CODES, code).toContain(code);
  });
});

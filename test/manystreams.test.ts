// Issue 31 (manystreams): with more fixed streams than CPUs, `--scheduler auto` runs pipelined
// without probing adaptive first. Adaptive sends only while it processes, one worker per CPU, so
// the other streams sat idle in turn during its probe and started over from a small window
// (bench/RESULTS.md, "--streams 8"). Through the CLI against a node process on loopback.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CLI, freshDir, jsonLines, randomFile, runCli } from './helpers.js';

let work: string;
let file: string;
let root: string;
let addr: string;
let node: ChildProcess;
const cpus = availableParallelism();

beforeAll(async () => {
  work = freshDir('manystreams');
  root = join(work, 'root');
  file = join(work, 'nine.bin');
  // 144 blocks of 64 KiB: enough for auto to probe both schedulers (16 windows of 8 blocks).
  randomFile(file, 9 << 20);
  node = spawn(process.execPath, [CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--no-auth', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const first = await new Promise<string>((resolve) => createInterface({ input: node.stdout! }).once('line', resolve));
  const ev = JSON.parse(first) as { type: string; host: string; port: number };
  expect(ev.type).toBe('listening');
  addr = `${ev.host}:${ev.port}`;
});

afterAll(() => {
  node?.kill('SIGKILL');
});

async function sendWith(streams: number, dest: string): Promise<Record<string, unknown>> {
  const r = await runCli(['send', file, `${addr}/${dest}`, '--streams', String(streams), '--block-size', '64K', '--json']);
  expect(r.status, r.stderr).toBe(0);
  expect(readFileSync(join(root, dest, 'nine.bin')).equals(readFileSync(file))).toBe(true);
  const summary = jsonLines(r.stdout).find((l) => l.type === 'summary')!;
  expect(summary.streams).toBe(streams);
  return summary.scheduler as Record<string, unknown>;
}

describe('issue 31: more streams than CPUs', () => {
  it('--streams above the CPU count runs pipelined without a probe, and says why', async () => {
    const streams = cpus + 1;
    const sched = await sendWith(streams, 'many');
    expect(sched).toMatchObject({ requested: 'auto', used: 'pipelined', probe: [] });
    expect(sched.reason).toBe(
      `${streams} streams, more than the ${cpus} CPUs adaptive sends on at once: pipelined, one sender per stream, without a probe`,
    );
  });

  it('--streams auto under CUBIC (streams may grow past the CPUs) runs pipelined; under BBR it probes', async () => {
    const run = async (cc: string, dest: string): Promise<Record<string, unknown>> => {
      const r = await runCli(['send', file, `${addr}/${dest}`, '--streams', 'auto', '--congestion', cc, '--block-size', '64K', '--json']);
      expect(r.status, r.stderr).toBe(0);
      expect(readFileSync(join(root, dest, 'nine.bin')).equals(readFileSync(file))).toBe(true);
      return jsonLines(r.stdout).find((l) => l.type === 'summary')!.scheduler as Record<string, unknown>;
    };
    const cubic = await run('cubic', 'auto-cubic');
    expect(cubic).toMatchObject({ requested: 'auto', used: 'pipelined', probe: [] });
    expect(cubic.reason).toMatch(new RegExp(`^up to \\d+ streams, more than the ${cpus} CPUs adaptive sends on at once`));
    const bbr = await run('bbr', 'auto-bbr');
    expect((bbr.probe as { scheduler: string }[]).map((p) => p.scheduler)).toEqual(['adaptive', 'pipelined']);
  });

  it('--streams 1 still probes both schedulers', async () => {
    const sched = await sendWith(1, 'one');
    expect((sched.probe as { scheduler: string }[]).map((p) => p.scheduler)).toEqual(['adaptive', 'pipelined']);
    expect(sched.reason).toMatch(/^probe of 8 blocks each: adaptive \d+ MiB\/s, pipelined \d+ MiB\/s; (adaptive|pipelined) for the rest$/);
  });
});

// The send summary's `firstByteSeconds` (issue 33): from the start of the send, scan included,
// to the first data byte on a data socket. Today the whole index is scanned and sent first, so
// it comes after the scan and before the end; a re-run with everything unchanged sends no block
// and has none (absent from the JSON, "never" in -v's time line). The HTML report says it too.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CLI, freshDir, jsonLines, runCli, smallTree } from './helpers.js';

let work: string;
let node: ChildProcess;
let addr: string;

beforeAll(async () => {
  work = freshDir('first-byte');
  smallTree(join(work, 'tree'), 2000);
  node = spawn(process.execPath, [CLI, 'serve', '--root', join(work, 'root'), '--listen', '127.0.0.1:0', '--no-auth', '--json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const first = await new Promise<string>((resolve) => createInterface({ input: node.stdout! }).once('line', resolve));
  const ev = JSON.parse(first) as { host: string; port: number };
  addr = `${ev.host}:${ev.port}`;
});

afterAll(() => {
  node?.kill('SIGKILL');
});

const summaryOf = (stdout: string) => jsonLines(stdout).find((e) => e.type === 'summary')!;

describe('firstByteSeconds in the send summary (issue 33)', () => {
  it('comes after the scan and before the end; absent when nothing is sent', async () => {
    const first = await runCli(['send', join(work, 'tree'), `${addr}/a`, '--json', '--report', join(work, 'report.html')]);
    expect(first.status, first.stderr).toBe(0);
    const s = summaryOf(first.stdout) as { files: number; seconds: number; scanSeconds: number; firstByteSeconds?: number };
    expect(s.files).toBeGreaterThanOrEqual(2000);
    expect(typeof s.firstByteSeconds).toBe('number');
    expect(s.firstByteSeconds!).toBeGreaterThan(s.scanSeconds);
    expect(s.firstByteSeconds!).toBeLessThan(s.seconds);
    // The HTML report's time line carries the same figure.
    expect(readFileSync(join(work, 'report.html'), 'utf8')).toContain(`first byte at ${s.firstByteSeconds!.toFixed(3)} s`);

    // Everything is there: no block leaves, so there is no first byte.
    const again = await runCli(['send', join(work, 'tree'), `${addr}/a`, '--json']);
    expect(again.status, again.stderr).toBe(0);
    const s2 = summaryOf(again.stdout);
    expect(s2).toMatchObject({ files: s.files, bytesMoved: 0 });
    expect(s2).not.toHaveProperty('firstByteSeconds');
  });

  it('-v prints it on the time line', async () => {
    const fresh = await runCli(['send', join(work, 'tree'), `${addr}/b`, '-v']);
    expect(fresh.status, fresh.stderr).toBe(0);
    const out = fresh.stdout + fresh.stderr;
    expect(out).toMatch(/^time: \d+\.\d{3} s, scan \d+\.\d{3} s, first byte at \d+\.\d{3} s$/m);
    const again = await runCli(['send', join(work, 'tree'), `${addr}/b`, '-v']);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout + again.stderr).toMatch(/^time: \d+\.\d{3} s, scan \d+\.\d{3} s, first byte never \(nothing to send\)$/m);
  });
});

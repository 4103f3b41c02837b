// Issue 31, item 4: `--streams auto` (the default) opens more data connections during a push
// while they still raise the goodput, which streams held back by loss do: through an emulated
// lossy link with CUBIC forced it opens more than 2 and the tree arrives identical; over
// loopback (no loss, CPU-bound) it stays at 2; the summary says what it chose and why, in
// `-v` and in the JSON summary; a fixed `--streams N` stays as it was.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, serve, type StorageNode } from '../dist/sdk/index.js';
import { CLI, finish, freshDir, jsonLines, randomFile, runCli, smallTree } from './helpers.js';
import { readyLine, startWan } from './wan.js';

const MiB = 1 << 20;
let work: string;
let src: string;
let node: StorageNode;

beforeAll(async () => {
  work = freshDir('streams-auto');
  src = join(work, 'src');
  mkdirSync(join(src, 'small'), { recursive: true });
  smallTree(join(src, 'small'), 200);
  randomFile(join(src, 'big.bin'), 24 * MiB);
  node = await serve({ root: join(work, 'root'), host: '127.0.0.1', port: 0, auth: false });
});

afterAll(async () => {
  await node?.close();
});

const summaryOf = (stdout: string): Record<string, unknown> => jsonLines(stdout).find((l) => l.type === 'summary')!;

describe('issue 31: --streams auto', () => {
  it('over loopback stays at 2 streams or fewer and says why, in -v and in the JSON summary', async () => {
    const r = await runCli(['send', src, `${node.url}/loop`, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const s = summaryOf(r.stdout);
    expect(s.streams as number).toBeLessThanOrEqual(2);
    expect(s.streamsReason).toMatch(/^auto: /);
    expect(await compareTrees(src, join(node.root, 'loop', 'src'))).toEqual([]);

    const v = await runCli(['send', src, `${node.url}/loop-v`, '-v', '--streams', 'auto']);
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout + v.stderr).toMatch(/^streams: [12] \(auto: [^)]+\)$/m);
  });

  it('a fixed --streams N stays fixed and says so; a bad value names the flag', async () => {
    const r = await runCli(['send', src, `${node.url}/fixed`, '-v', '--streams', '3']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/^streams: 3 \(fixed by --streams\)$/m);
    expect(r.stdout + r.stderr).toMatch(/over 3 streams/);

    const bad = await runCli(['send', src, `${node.url}/bad`, '--streams', 'many']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^longhaul: E_USAGE: .*--streams.*expected auto or an integer in 1\.\.\d+/m);
    const env = await runCli(['send', src, `${node.url}/bad`], { LONGHAUL_STREAMS: 'many' });
    expect(env.status).toBe(2);
    expect(env.stderr).toMatch(/^longhaul: E_CONFIG: .*expected auto or an integer/m);
  });

  it('through a lossy emulated link with CUBIC forced opens more than 2 streams, and the tree arrives identical', async () => {
    // 20 ms and 1% loss: one CUBIC stream gets ~1 MB/s of the 200 Mbit/s.
    const wan = await startWan({ rtt: '20ms', rate: '200mbit', loss: '1%', seed: 314 });
    try {
      const token = 'streams auto test token 0123456789';
      const root = join(work, 'wan-root');
      const port = 7181;
      const env = ['env', `LONGHAUL_TOKEN=${token}`, process.execPath, CLI];
      const n = wan.spawn(wan.b, env[0]!, [...env.slice(1), 'serve', '--root', root, '--listen', `${wan.b.addr}:${port}`, '--json']);
      await readyLine(n, (l) => l.includes('"port"'));
      const r = await finish(
        wan.spawn(wan.a, env[0]!, [...env.slice(1), 'send', src, `${wan.b.addr}:${port}/wan`, '--congestion', 'cubic', '--json']),
      );
      expect(r.status, r.stderr).toBe(0);
      const s = summaryOf(r.stdout);
      expect(s.congestion).toBe('cubic');
      expect(s.streams as number).toBeGreaterThan(2);
      expect(s.streamsReason).toMatch(/^auto: (goodput [+-]\d+%|streams held back by loss)/);
      expect((s.perStreamBytes as number[]).length).toBe(s.streams);
      expect(await compareTrees(src, join(root, 'wan', 'src'))).toEqual([]);
    } finally {
      await wan.close();
    }
  }, 60_000);
});

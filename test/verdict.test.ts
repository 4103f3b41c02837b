// Issue 31, item 6: every send ends with one line saying what limited it, with the evidence,
// read from the kernel's TCP_INFO of each data stream (and, for a receiver that held the
// streams back, the node's own STATS). Against a node with --rate the line says "rate limit";
// through a 100 Mbit/s emulated link with nothing else in the way it says "link".
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { compareTrees, serve, type StorageNode } from '../dist/sdk/index.js';
import { CLI, finish, freshDir, randomFile, runCli } from './helpers.js';
import { readyLine, startWan, type Wan } from './wan.js';

const MiB = 1 << 20;
const nodes: StorageNode[] = [];
let wan: Wan | undefined;

afterAll(async () => {
  for (const n of nodes) await n.close();
  await wan?.close();
});

function summaryOf(stdout: string): Record<string, unknown> & { verdict: { limit: string; evidence: string } } {
  return stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .find((l) => l.type === 'summary');
}

describe('issue 31: what limited the run', () => {
  it('against a node limited to 16 MiB/s, the CLI says "rate limit" and shows the limit', async () => {
    const work = freshDir('verdict-rate');
    mkdirSync(join(work, 'src'));
    randomFile(join(work, 'src', 'data.bin'), 48 * MiB);
    const node = await serve({ root: join(work, 'root'), auth: false, rate: '16M' });
    nodes.push(node);
    const r = await runCli(['send', join(work, 'src'), `${node.url}/d`, '-v']);
    expect(r.status, r.stderr).toBe(0);
    const s = summaryOf(r.stdout);
    expect(s.verdict.limit).toBe('rate limit');
    expect(s.verdict.evidence).toMatch(/^the node limits all transfers to 16\.8 MB\/s and this send ran at 1\d\.\d MB\/s/);
    // The human summary (with -v) ends with the same line, wrapped at 120 columns (continuations indented by two spaces).
    expect(r.stderr.trim().replace(/\n  /g, ' ').split('\n').at(-1)).toBe(`limited by: rate limit (${s.verdict.evidence})`);
    expect(await compareTrees(join(work, 'src'), join(node.root, 'd', 'src'))).toEqual([]);
  });

  it('through a 100 Mbit/s emulated link, it says "link", with the streams busy and the RTT of the link', async () => {
    const work = freshDir('verdict-link');
    mkdirSync(join(work, 'src'));
    randomFile(join(work, 'src', 'data.bin'), 32 * MiB);
    wan = await startWan({ rtt: '20ms', rate: '100mbit', loss: '0' });
    const env = { LONGHAUL_TOKEN: 'verdict test token 0123456789' };
    Object.assign(process.env, env);
    const node = wan.spawn(wan.b, process.execPath, [
      CLI,
      'serve',
      '--root',
      join(work, 'root'),
      '--listen',
      `${wan.b.addr}:7272`,
      '--json',
    ]);
    await readyLine(node, (l) => l.includes('"port"'));
    const r = await finish(wan.spawn(wan.a, process.execPath, [CLI, 'send', join(work, 'src'), `${wan.b.addr}:7272/d`, '--json']));
    expect(r.status, r.stderr).toBe(0);
    const s = summaryOf(r.stdout);
    expect(s.verdict.limit, s.verdict.evidence).toBe('link');
    const rtt = Number(/at ([\d.]+) ms RTT/.exec(s.verdict.evidence)![1]);
    expect(rtt).toBeGreaterThanOrEqual(19);
    expect(s.network).toHaveLength(2);
    expect(await compareTrees(join(work, 'src'), join(work, 'root', 'd', 'src'))).toEqual([]);
  });
});

// Issue 31: transfers over an emulated WAN (test/wan.ts: lh-netem, two network namespaces and a
// user-space relay). A tree of small files and a large file cross a 30 ms, 100 Mbit/s link that
// loses 0.5% of its packets and arrive identical; the session's control round trips are the
// same for 200 files and for 2,000 (nothing waits on the far end per file or per block).
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees } from '../dist/sdk/index.js';
import { CLI, finish, freshDir, randomFile, smallTree } from './helpers.js';
import { readyLine, startWan, type Wan } from './wan.js';

const MiB = 1 << 20;
// A node on a non-loopback address asks for a token; both sides read it from the environment.
process.env.LONGHAUL_TOKEN = 'wan tests share this token 0123456789';
const PORT = 7171;
let wan: Wan;
let work: string;
let root: string;

beforeAll(async () => {
  work = freshDir('wan');
  root = join(work, 'root');
  wan = await startWan({ rtt: '30ms', rate: '100mbit', loss: '0.5%', seed: 31 });
  const node = wan.spawn(wan.b, process.execPath, [CLI, 'serve', '--root', root, '--listen', `${wan.b.addr}:${PORT}`, '--json']);
  await readyLine(node, (l) => l.includes('"port"'));
});

afterAll(async () => {
  await wan?.close();
});

async function push(src: string, dest: string): Promise<Record<string, unknown>> {
  const r = await finish(wan.spawn(wan.a, process.execPath, [CLI, 'send', src, `${wan.b.addr}:${PORT}/${dest}`, '--json']));
  expect(r.status, r.stderr).toBe(0);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return lines.find((l) => l.type === 'summary')!;
}

describe('issue 31: over an emulated WAN (30 ms, 100 Mbit/s, 0.5% loss)', () => {
  it('2,000 small files and a 20 MiB file arrive identical, and the link really lost packets', async () => {
    const src = join(work, 'mixed');
    mkdirSync(join(src, 'small'), { recursive: true });
    smallTree(join(src, 'small'), 2000);
    randomFile(join(src, 'big.bin'), 20 * MiB);
    const s = await push(src, 'mixed');
    expect(await compareTrees(src, join(root, 'mixed', 'mixed'))).toEqual([]);
    expect(s.files).toBeGreaterThan(2000);
    const counters = await wan.close();
    // The relay dropped data packets at random on the way to the node, and TCP recovered.
    expect(counters.aToB.lost).toBeGreaterThan(0);
    expect(counters.aToB.bytes).toBeGreaterThan(20 * MiB);
    // What the kernel dropped before the relay read it is counted apart from the link's loss.
    expect(counters.aToB.tunDropped).toBeGreaterThanOrEqual(0);
    expect(counters.bToA.tunDropped).toBeGreaterThanOrEqual(0);
    wan = await startWan({ rtt: '30ms', rate: '100mbit', loss: '0.5%', seed: 32 });
    const node = wan.spawn(wan.b, process.execPath, [CLI, 'serve', '--root', root, '--listen', `${wan.b.addr}:${PORT}`, '--json']);
    await readyLine(node, (l) => l.includes('"port"'));
  });

  it('manystreams: the TUN devices queue 20,000 packets for a late relay rather than the kernel default 500', () => {
    for (const side of [wan.a, wan.b]) {
      const link = execFileSync('ip', ['-n', side.netns, 'link', 'show', 'dev', side.dev], { encoding: 'utf8' });
      expect(link).toContain('qlen 20000');
    }
  });

  it('the control round trips are the same for 200 files and for 2,000', async () => {
    const few = join(work, 'few');
    const many = join(work, 'many');
    mkdirSync(few);
    mkdirSync(many);
    smallTree(few, 200);
    smallTree(many, 2000);
    const a = await push(few, 'few');
    const b = await push(many, 'many');
    expect(await compareTrees(few, join(root, 'few', 'few'))).toEqual([]);
    expect(await compareTrees(many, join(root, 'many', 'many'))).toEqual([]);
    // HELLO, MANIFEST (AUTH goes with it, its answer read before READY) and DONE each wait
    // once for the node.
    expect(a.roundTrips).toBe(3);
    expect(b.roundTrips).toBe(a.roundTrips);
  });
});

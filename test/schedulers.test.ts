// The schedulers, the BLAKE3 processing stage, placement and the thread-state timeline, end to
// end through the SDK and the CLI.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, send, serve, type StorageNode } from '../dist/sdk/index.js';
import { freshDir, randomFile, smallTree } from './helpers.js';

let work: string;
let src: string;
let node: StorageNode;

beforeAll(async () => {
  work = freshDir('sched');
  src = join(work, 'data', 'src');
  mkdirSync(join(src, 'small'), { recursive: true });
  smallTree(join(src, 'small'), 3000);
  randomFile(join(src, 'big.bin'), 96 << 20);
  node = await serve({ root: join(work, 'root'), auth: false });
});

afterAll(async () => {
  await node?.close();
});

describe('schedulers', () => {
  for (const scheduler of ['pipelined', 'adaptive', 'auto'] as const) {
    for (const digest of ['none', 'blake3'] as const) {
      it(`${scheduler} with digest ${digest} delivers an identical tree and says what ran`, async () => {
        const dest = `${scheduler}-${digest}`;
        const s = await send(src, `${node.url}/${dest}`, { scheduler, digest, blockSize: 512 << 10 });
        expect(await compareTrees(join(work, 'data'), join(node.root, dest))).toEqual([]);
        expect(s.scheduler.requested).toBe(scheduler);
        if (scheduler === 'auto') {
          // 200+ blocks of 512 KiB: enough to probe both.
          expect(s.scheduler.probe.map((p) => p.scheduler)).toEqual(['adaptive', 'pipelined']);
          expect(['pipelined', 'adaptive']).toContain(s.scheduler.used);
          expect(s.scheduler.reason).toMatch(/probe/);
        } else {
          expect(s.scheduler.used).toBe(scheduler);
        }
        expect(s.digest).toBe(digest);
        if (digest === 'blake3') {
          expect(s.sendfileBlocks).toBe(0);
          expect(s.fastPaths.sendfileFallback).toMatch(/BLAKE3/);
        } else {
          expect(s.sendfileBlocks).toBeGreaterThan(0);
        }
        // The timeline saw threads at work.
        expect(s.timeline.length).toBeGreaterThan(0);
        expect(s.timeline.some((t) => t.reading + t.processing + t.sending > 0)).toBe(true);
        for (let i = 1; i < s.timeline.length; i++) expect(s.timeline[i]!.ms).toBeGreaterThanOrEqual(s.timeline[i - 1]!.ms);
      });
    }
  }

  it('the adaptive workers take the streams in turn: every stream carries blocks, even with more streams than CPUs', async () => {
    const s = await send(join(src, 'big.bin'), `${node.url}/adaptive-streams`, { scheduler: 'adaptive', streams: 5 });
    expect(s.perStreamBytes).toHaveLength(5);
    expect(
      s.perStreamBytes.every((b) => b > 0),
      JSON.stringify(s.perStreamBytes),
    ).toBe(true);
    expect(s.perStreamBytes.reduce((a, b) => a + b, 0)).toBe(96 << 20);
  });

  it('placement is reported, and pin: always binds the engine threads', async () => {
    const s = await send(join(src, 'big.bin'), `${node.url}/pinned`, { pin: 'always', scheduler: 'pipelined' });
    expect(s.placement.pinned).toBe(true);
    expect(s.placement.threads.length).toBeGreaterThan(0);
    const cpus = (list: string): number[] =>
      list.split(',').flatMap((r) => {
        const [a, b] = r.split('-').map(Number);
        return Array.from({ length: (b ?? a!) - a! + 1 }, (_, i) => a! + i);
      });
    const zone = (name: string): number[] =>
      cpus(name.startsWith('lh-rd') ? s.placement.diskCpus : name.startsWith('lh-pr') ? s.placement.otherCpus : s.placement.netCpus);
    expect(s.placement.threads.map((t) => t.name.replace(/-\d+$/, '')).sort()).toEqual(expect.arrayContaining(['lh-rd', 'lh-tx']));
    for (const t of s.placement.threads) {
      expect(t.error).toBeUndefined();
      expect(zone(t.name), `${t.name} on CPU ${t.cpu}`).toContain(t.cpu);
    }
    const unpinned = await send(join(src, 'big.bin'), `${node.url}/unpinned`, { pin: 'never' });
    expect(unpinned.placement.pinned).toBe(false);
    expect(unpinned.placement.fallback).toMatch(/never/);
  });

  it('bad scheduler, digest or cores values are E_USAGE', async () => {
    await expect(send(src, node.url, { scheduler: 'fastest' as never })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(send(src, node.url, { digest: 'md5' as never })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(send(src, node.url, { cores: { io: '4000-4001' } })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(send(src, node.url, { cores: { io: 'x' } })).rejects.toMatchObject({ code: 'E_USAGE' });
  });

  it('the CLI writes the timeline with --timeline and refuses an unknown scheduler', () => {
    const cli = join(import.meta.dirname, '..', 'dist', 'cli.js');
    const file = join(work, 'timeline.json');
    const r = spawnSync(
      process.execPath,
      [cli, 'send', join(src, 'big.bin'), `${node.url}/cli`, '--scheduler', 'adaptive', '--timeline', file, '--json'],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(summary.scheduler.used).toBe('adaptive');
    expect(summary.timeline).toBeUndefined();
    const t = JSON.parse(readFileSync(file, 'utf8'));
    expect(t.samples.length).toBe(summary.timelineSamples);
    expect(t.samples.length).toBeGreaterThan(0);
    expect(Object.keys(t.samples[0]).sort()).toEqual([
      'blocked',
      'blockedInput',
      'blockedPool',
      'blockedQueue',
      'blockedRate',
      'blockedSocket',
      'ms',
      'processing',
      'queued',
      'reading',
      'sending',
      'writing',
    ]);
    expect(t.scheduler.used).toBe('adaptive');
    const bad = spawnSync(process.execPath, [cli, 'send', src, node.url, '--scheduler', 'fastest'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
  });
});

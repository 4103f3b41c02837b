// End to end through the SDK on loopback: a 256 MiB random file and a tree of 20,000 small
// files, each with 1 and 8 streams, compared byte for byte and by mode, mtime and link target.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, get, LonghaulError, send, serve, type Progress, type StorageNode } from '../dist/sdk/index.js';
import { freshDir, randomFile, smallTree } from './helpers.js';

const MiB = 1 << 20;
let work: string;
let node: StorageNode;
let bigDir: string;
let treeParent: string;

beforeAll(async () => {
  work = freshDir('sdk');
  bigDir = join(work, 'big');
  mkdirSync(bigDir);
  randomFile(join(bigDir, 'random.bin'), 256 * MiB);
  treeParent = join(work, 'tree');
  mkdirSync(join(treeParent, 'small'), { recursive: true });
  smallTree(join(treeParent, 'small'), 20_000);
  node = await serve({ root: join(work, 'root'), auth: false });
});

afterAll(async () => {
  await node?.close();
});

describe('send through the SDK', () => {
  for (const streams of [1, 8]) {
    it(`a 256 MiB random file arrives identical over ${streams} stream(s), sent with sendfile`, async () => {
      const events: Progress[] = [];
      const s = await send(join(bigDir, 'random.bin'), `${node.url}/big-${streams}`, { streams, onProgress: (p) => events.push(p) });
      expect(s.bytes).toBe(256 * MiB);
      expect(s.files).toBe(1);
      expect(s.streams).toBe(streams);
      expect(s.perStreamBytes.reduce((a, b) => a + b, 0)).toBe(256 * MiB);
      // Every block (1 MiB by default) lies inside the one file, so every block left with sendfile.
      expect(s.fastPaths.sendfile).toBe(true);
      expect(s.sendfileBlocks).toBe(256);
      expect(s.sendfileBytes).toBe(256 * MiB);
      expect(s.packedBlocks).toBe(0);
      expect(await compareTrees(bigDir, join(node.root, `big-${streams}`))).toEqual([]);
      // Progress only moves forward and ends at the total.
      expect(events.length).toBeGreaterThan(0);
      for (let i = 1; i < events.length; i++) expect(events[i]!.bytesDone).toBeGreaterThanOrEqual(events[i - 1]!.bytesDone);
      expect(events.at(-1)!.bytesDone).toBe(256 * MiB);
      expect(events.at(-1)!.filesDone).toBe(1);
    });
  }

  it('LONGHAUL_NO_SENDFILE forces the read-and-write path, records why, and gives the same bytes', async () => {
    process.env.LONGHAUL_NO_SENDFILE = '1';
    try {
      const s = await send(join(bigDir, 'random.bin'), `${node.url}/big-nosendfile`, { streams: 2 });
      expect(s.fastPaths.sendfile).toBe(false);
      expect(s.fastPaths.sendfileFallback).toMatch(/LONGHAUL_NO_SENDFILE/);
      expect(s.sendfileBlocks).toBe(0);
      expect(s.packedBlocks).toBe(256);
      expect(s.packedBytes).toBe(256 * MiB);
    } finally {
      delete process.env.LONGHAUL_NO_SENDFILE;
    }
    expect(await compareTrees(bigDir, join(node.root, 'big-nosendfile'))).toEqual([]);
  });

  for (const streams of [1, 8]) {
    it(`a tree of 20,000 small files arrives identical over ${streams} stream(s)`, async () => {
      const s = await send(join(treeParent, 'small'), `${node.url}/tree-${streams}`, { streams });
      expect(s.files).toBe(20_001);
      expect(s.symlinks).toBe(3);
      expect(s.packedBlocks).toBeGreaterThan(0);
      expect(await compareTrees(treeParent, join(node.root, `tree-${streams}`))).toEqual([]);
    });
  }

  it("verify: 'full' has every file read back and checked against the sender's BLAKE3, on a push and a pull", async () => {
    const src = join(work, 'vf');
    mkdirSync(src);
    smallTree(join(src, 'small'), 500);
    randomFile(join(src, 'large.bin'), 24 * MiB + 123);
    // 1 MiB blocks: the large file spans blocks and streams, small files share blocks.
    const s = await send(src, `${node.url}/vf`, { verify: 'full', blockSize: MiB });
    expect(s.verify).toBe('full');
    expect(s.files).toBe(502);
    expect(s.verifiedFiles).toBe(s.files);
    expect(await compareTrees(src, join(node.root, 'vf', 'vf'))).toEqual([]);
    const plain = await send(src, `${node.url}/vf-plain`);
    expect([plain.verify, plain.verifiedFiles]).toEqual(['block', 0]);
    const back = join(work, 'vf-back');
    const g = await get(`${node.url}/vf/vf`, back, { verify: 'full' });
    expect([g.verify, g.verifiedFiles]).toEqual(['full', 502]);
    expect(await compareTrees(src, join(back, 'vf'))).toEqual([]);
    await expect(send(src, node.url, { verify: 'all' as never })).rejects.toMatchObject({ code: 'E_USAGE' });
  });

  it('rejects bad options with E_USAGE before connecting', async () => {
    await expect(send(bigDir, node.url, { streams: 0 })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(send(bigDir, 'no-port-here:')).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(send(bigDir, node.url, { blockSize: 100 })).rejects.toBeInstanceOf(LonghaulError);
  });

  it('a missing source is E_NOT_FOUND and an unreachable node E_CONNECT', async () => {
    await expect(send(join(work, 'nope'), node.url)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    // Port 1 on loopback: nothing listens there.
    await expect(send(bigDir, '127.0.0.1:1')).rejects.toMatchObject({ code: 'E_CONNECT' });
  });

  it('a block size above the node limit is refused with E_LIMIT', async () => {
    await expect(send(bigDir, node.url, { blockSize: 8 * MiB })).rejects.toMatchObject({ code: 'E_LIMIT' });
    expect(node.stats().active).toBe(0);
  });
});

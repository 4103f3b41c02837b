// Issue 30, the typed boundary: the engine's defaults and limits reach the SDK and the CLI's
// config from one native table, and a node's statistics cross as a typed object that reads the
// same as the JSON a remote STATS answer carries.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { configJsonSchema, nodeStats, resolveConfig, send, serve, type NodeStats, type StorageNode } from '../dist/sdk/index.js';
import { native } from '../dist/sdk/native.js';
import { freshDir, smallTree } from './helpers.js';

const TOKEN = 'boundary tests share this token 0123';

describe('issue 30: one table of defaults and limits', () => {
  const table = native.defaults();

  it("the CLI's config defaults are the engine's", () => {
    const { values } = resolveConfig({ env: {}, cwd: freshDir('boundary-config') });
    expect(values).toMatchObject({
      // The CLI's default is `auto` (issue 31), which starts at the engine's count below.
      streams: 'auto',
      blockSize: table.send.blockSize,
      scheduler: table.send.scheduler,
      digest: table.send.digest,
      verify: table.send.verify,
      pin: table.send.pin,
      resume: table.send.resume,
      ioTimeout: table.send.ioTimeoutMs / 1000,
      idleTimeout: table.serve.idleTimeoutMs / 1000,
      resumeTtl: table.serve.resumeTtlMs / 1000,
      maxTransfers: table.serve.maxTransfers,
      maxConnections: table.serve.maxConnections,
      maxPerPeer: table.serve.maxPerPeer,
      memory: table.serve.memory,
      fsync: table.serve.fsync,
      keepSetid: table.serve.keepSetid,
    });
    // The values the docs have always named.
    expect([table.send.streams, table.send.blockSize, table.serve.writers, table.serve.poolBuffers]).toEqual([2, 1 << 20, 4, 16]);
  });

  it("the config schema's bounds and the SDK's checks are the engine's limits", async () => {
    const props = (configJsonSchema() as { properties: Record<string, { anyOf?: { minimum?: number; maximum?: number }[] }> }).properties;
    const bounds = (key: string) => props[key]!.anyOf!.find((s) => s.minimum !== undefined);
    expect(bounds('streams')).toMatchObject({ minimum: table.limits.streams.min, maximum: table.limits.streams.max });
    expect(bounds('blockSize')).toMatchObject({ minimum: table.limits.blockSize.min, maximum: table.limits.blockSize.max });
    expect(bounds('writers')).toMatchObject({ minimum: table.limits.writers.min, maximum: table.limits.writers.max });
    expect(table.limits.blockSize).toEqual({ min: 4096, max: 64 << 20 });
    await expect(send('.', '127.0.0.1:1', { blockSize: table.limits.blockSize.max + 1 })).rejects.toMatchObject({
      code: 'E_USAGE',
      message: `blockSize must be an integer in 4096..${64 << 20}, got ${(64 << 20) + 1}`,
    });
    await expect(send('.', '127.0.0.1:1', { streams: table.limits.streams.max + 1 })).rejects.toMatchObject({ code: 'E_USAGE' });
  });
});

describe("issue 30: a node's stats cross typed", () => {
  let node: StorageNode;
  let src: string;

  beforeAll(async () => {
    const work = freshDir('boundary');
    src = join(work, 'src');
    mkdirSync(src, { recursive: true });
    smallTree(src, 20);
    node = await serve({ root: join(work, 'root'), token: TOKEN, capacity: '1G', rate: '10G', peerRates: { '127.0.0.1': '5G' } });
  });

  afterAll(async () => {
    await node?.close();
  });

  /** The shape of a value: its keys, recursively, and the type at each leaf (null kept apart). */
  function shape(v: unknown): unknown {
    if (v === null) return 'null';
    if (Array.isArray(v)) return v.map(shape);
    if (typeof v === 'object') return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, shape(x)]));
    return typeof v;
  }

  it('node.stats() has the fields, order and values of the remote STATS answer', async () => {
    await send(src, `${node.url}/in`, { token: TOKEN });
    await expect(send(join(src, 'missing'), `${node.url}/in`, { token: TOKEN })).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    const local = node.stats();
    const remote: NodeStats = await nodeStats(node.url, { token: TOKEN });
    expect(Object.keys(local)).toEqual(Object.keys(remote));
    expect(shape(local)).toEqual(shape(remote));
    // What moves between the two reads: the connection asking, the rates' clocks.
    const still = (s: NodeStats) => ({ ...s, connections: undefined, limits: s.limits.map((l) => ({ ...l, utilisation: 0 })) });
    expect(still(local)).toEqual(still(remote));
    expect(local.capacity).toBe(1 << 30);
    expect(local.completed).toBe(1);
    expect(local.recent[0]).toMatchObject({ direction: 'in', outcome: 'ok', code: null });
    expect(local.limits.map((l) => [l.scope, l.peer])).toEqual([
      ['total', null],
      ['peer', '127.0.0.1'],
    ]);
    expect(local.lastFileCreation).not.toBeNull();
  });
});

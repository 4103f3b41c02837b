// The SDK's edges (issue 35, item 9): an abort's reason survives as the error's cause, a closed
// Client answers E_CLOSED, the shipped typings compile under a strict user's settings, and the
// node's Prometheus process metrics carry the names dashboards look for.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { connect, exitCodeFor, fixFor, LonghaulError, send, serve, type StorageNode } from '../dist/sdk/index.js';
import { native } from '../dist/sdk/native.js';
import { allocatedFile, CLI, freshDir } from './helpers.js';

const ROOT = join(import.meta.dirname, '..');

let work: string;
let node: StorageNode;
const children: ChildProcess[] = [];

beforeAll(async () => {
  work = freshDir('sdk-details');
  // Big enough to be cut midway; allocated, not sparse (holes would not travel), and quick to
  // make: its blocks are reserved, not written (they read as zeros).
  allocatedFile(join(work, 'big.bin'), 1 << 30);
  node = await serve({ root: join(work, 'root'), auth: false });
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await node?.close();
});

async function rejection(p: Promise<unknown>): Promise<LonghaulError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(LonghaulError);
    return err as LonghaulError;
  }
  throw new Error('expected a rejection');
}

describe('issue 35: SDK details', () => {
  it('abort(reason) midway rejects with E_CANCELLED whose cause is the reason', async () => {
    const abort = new AbortController();
    const reason = new Error('the operator pulled the plug');
    const e = await rejection(
      send(join(work, 'big.bin'), `${node.url}/cut`, {
        streams: 1,
        retries: 0,
        signal: abort.signal,
        progressIntervalMs: 1,
        onProgress: (p) => {
          if (!abort.signal.aborted && p.bytesDone > 0) abort.abort(reason);
        },
      }),
    );
    expect(e.code).toBe('E_CANCELLED');
    expect(e.cause).toBe(reason);
  });

  it('a signal aborted before the call keeps its reason too, a plain value included', async () => {
    const abort = new AbortController();
    abort.abort('shutting down');
    const e = await rejection(send(join(work, 'big.bin'), `${node.url}/never`, { signal: abort.signal }));
    expect(e.code).toBe('E_CANCELLED');
    expect(e.cause).toBe('shutting down');
    // abort() without a reason: the signal's own AbortError is the cause.
    const plain = new AbortController();
    plain.abort();
    const p = await rejection(send(join(work, 'big.bin'), `${node.url}/never`, { signal: plain.signal }));
    expect(p.cause).toBe(plain.signal.reason);
    expect((p.cause as Error).name).toBe('AbortError');
  });

  it('a closed Client answers E_CLOSED on every call, and so does the addon underneath', async () => {
    const client = await connect(node.url);
    expect((await client.list('')).length).toBeGreaterThanOrEqual(0);
    client.close();
    client.close();
    const calls: [string, () => Promise<unknown>][] = [
      ['list', () => client.list('')],
      ['stats', () => client.stats()],
      ['readv', () => client.readv([{ path: 'x', offset: 0, length: 1 }])],
      ['readvSettled', () => client.readvSettled([])],
      ['read', () => client.read('x', 0, 1)],
      ['limits', async () => client.limits],
    ];
    for (const [name, call] of calls) {
      const e = await rejection(call());
      expect([name, e.code]).toEqual([name, 'E_CLOSED']);
    }
    expect(exitCodeFor('E_CLOSED')).toBe(2);
    expect(fixFor('E_CLOSED')).toMatch(/connect\(\) again/);

    // The binding's own answer, for a request that reaches it after close() (one queued
    // behind another when close() came): the engine's E_CLOSED, not E_USAGE.
    const raw = await native.connect({ address: `${node.address.host}:${node.address.port}` });
    raw.close();
    await expect(raw.stats()).rejects.toMatchObject({ code: 'E_CLOSED', message: 'the connection is closed' });
    await expect(raw.list('')).rejects.toMatchObject({ code: 'E_CLOSED' });
  });

  it('native/binding.d.cts and dist/sdk compile with skipLibCheck false; LonghaulError.code is the union of codes', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'test', 'typings')], {
      encoding: 'utf8',
    });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 60_000);

  it('serve --metrics exposes process_* and nodejs_* under their usual names, never longhaul_process_*', async () => {
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--root', join(work, 'metrics-root'), '--listen', '127.0.0.1:0', '--no-auth', '--metrics', '127.0.0.1:0', '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
    const { metrics } = JSON.parse(first) as { metrics: string };
    const res = await fetch(metrics);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^# TYPE process_cpu_seconds_total counter$/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(text).toMatch(/^# TYPE nodejs_eventloop_lag_seconds gauge$/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d+/m);
    expect(text).toMatch(/^longhaul_pool_buffers \d+/m);
    expect(text).not.toMatch(/longhaul_process_|process_process_|longhaul_nodejs_/);
    // Every metric is the node's own (longhaul_*) or one of the two standard families.
    const names = new Set([...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!));
    for (const n of names) expect(n).toMatch(/^(longhaul|process|nodejs)_/);
    child.kill('SIGTERM');
  });
});

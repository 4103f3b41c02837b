// Issue 29, items 2 and 3: the node sizes its own memory (a pull's pool follows the data and
// the node's limits, one budget for all transfers, E_BUSY with a retry-after hint past it),
// and a third-party copy goes only to the targets the operator listed (--copy-to, E_DENIED).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, copy, get, LonghaulError, ls, nodeStats, send, serve, type StorageNode } from '../dist/sdk/index.js';
import { freshDir, randomFile, smallTree } from './helpers.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');
const MiB = 1 << 20;
let work: string;
const children: ChildProcess[] = [];
const nodes: StorageNode[] = [];

beforeAll(() => {
  work = freshDir('node-memory');
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const n of nodes) await n.close();
});

/** A node started by the CLI as its own process: its address and pid. */
async function cliNode(root: string, extra: string[] = []): Promise<{ url: string; pid: number }> {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--no-auth', '--json', '--log-level', 'warn', ...extra],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.push(child);
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  const ev = JSON.parse(first) as { type: string; host: string; port: number };
  expect(ev.type).toBe('listening');
  return { url: `${ev.host}:${ev.port}`, pid: child.pid! };
}

/** A field of /proc/PID/status, in bytes. */
function procKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/** A listener that records every connection made to it. */
async function trap(): Promise<{ server: NetServer; url: string; connections: () => number }> {
  let n = 0;
  const server = createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { server, url: `127.0.0.1:${port}`, connections: () => n };
}

describe('issue 29: memory is the node’s to size', () => {
  it('a GET asking 64 streams of 4 MiB for a 5-byte file leaves the node’s RSS within 32 MiB, and the pull works', async () => {
    const root = join(work, 'rss', 'root');
    mkdirSync(join(root, 'd'), { recursive: true });
    writeFileSync(join(root, 'd', 'tiny'), 'hello');
    writeFileSync(join(work, 'rss', 'canary'), 'canary bytes');
    const { url, pid } = await cliNode(root);
    // A first pull brings in what any pull costs once (threads, the client's code paths).
    await get(`${url}/d/tiny`, join(work, 'rss', 'warm'));
    const before = { rss: procKiB(pid, 'VmRSS'), peak: procKiB(pid, 'VmHWM') };
    const s = await get(`${url}/d/tiny`, join(work, 'rss', 'got'), { streams: 64, blockSize: 4 * MiB });
    expect(s.bytes).toBe(5);
    expect(readFileSync(join(work, 'rss', 'got', 'tiny'), 'utf8')).toBe('hello');
    // Before the fix the node took a pool of 2 x 64 + 4 buffers of 4 MiB (528 MiB) for it.
    const peak = procKiB(pid, 'VmHWM');
    expect(peak - before.peak, `VmHWM ${before.peak} -> ${peak}`).toBeLessThan(32 * MiB);
    expect(procKiB(pid, 'VmRSS') - before.rss).toBeLessThan(32 * MiB);
    const stats = await nodeStats(url);
    expect(stats.memory).toEqual({ budget: 1 << 30, held: 16 * 4 * MiB });
    expect((await ls(`${url}/d`)).map((e) => e.name)).toEqual(['tiny']);
    expect(readFileSync(join(work, 'rss', 'canary'), 'utf8')).toBe('canary bytes');
  });

  it('past a tiny --memory a second pull gets E_BUSY with a retry-after hint; the first completes and the node serves on', async () => {
    const root = join(work, 'budget', 'root');
    mkdirSync(root, { recursive: true });
    randomFile(join(root, 'slow'), 3 * MiB);
    writeFileSync(join(root, 'small'), 'small file');
    // The push pool is one 4 MiB buffer; of 6 MiB, 2 are left: one pull's 1 MiB pool at a time.
    const node = await serve({ root, auth: false, poolBuffers: 1, memory: '6M', rate: '1M' });
    nodes.push(node);
    expect(node.stats().memory).toEqual({ budget: 6 * MiB, held: 4 * MiB });
    const first = get(`${node.url}/slow`, join(work, 'budget', 'got1'), { blockSize: MiB });
    const until = Date.now() + 10_000;
    while (node.stats().active === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(node.stats().memory.held).toBeGreaterThan(5 * MiB);
    const e = await get(`${node.url}/slow`, join(work, 'budget', 'got2'), { blockSize: MiB }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(LonghaulError);
    expect(e).toMatchObject({ code: 'E_BUSY', retryAfterMs: 5000 });
    expect((e as LonghaulError).message).toMatch(/retry after 5 s/);
    expect(existsSync(join(work, 'budget', 'got2', 'slow'))).toBe(false);
    expect((await first).bytes).toBe(3 * MiB);
    expect(readFileSync(join(work, 'budget', 'got1', 'slow')).equals(readFileSync(join(root, 'slow')))).toBe(true);
    expect(node.stats().memory.held).toBe(4 * MiB);
    expect(node.stats().errors.E_BUSY).toBe(1);
    await get(`${node.url}/small`, join(work, 'budget', 'got3'));
    expect(readFileSync(join(work, 'budget', 'got3', 'small'), 'utf8')).toBe('small file');
  });

  it('a --memory below the push pool is refused at start', async () => {
    await expect(serve({ root: join(work, 'small-memory'), auth: false, memory: '32M' })).rejects.toMatchObject({ code: 'E_USAGE' });
  });
});

describe('issue 29: third-party copy goes only where the operator allows', () => {
  let src: string;
  beforeAll(() => {
    src = join(work, 'copy-src');
    mkdirSync(join(src, 'tree'), { recursive: true });
    smallTree(join(src, 'tree'), 50);
  });

  it('a COPY to a target not in --copy-to gets E_DENIED and the node makes no connection to it', async () => {
    const t = await trap();
    try {
      const b = await serve({ root: join(work, 'deny', 'b'), auth: false });
      nodes.push(b);
      const a = await serve({ root: join(work, 'deny', 'a'), auth: false, copyTo: [b.url] });
      const open = await serve({ root: join(work, 'deny', 'open'), auth: false });
      nodes.push(a, open);
      writeFileSync(join(a.root, 'f'), 'data');
      writeFileSync(join(open.root, 'f'), 'data');
      await expect(copy(`${a.url}/f`, `${t.url}/x`)).rejects.toMatchObject({ code: 'E_DENIED' });
      // No list: the node copies nowhere, a real node included.
      await expect(copy(`${open.url}/f`, `${b.url}/x`)).rejects.toMatchObject({ code: 'E_DENIED' });
      await expect(copy(`${open.url}/f`, `${t.url}/x`)).rejects.toMatchObject({ code: 'E_DENIED' });
      await new Promise((r) => setTimeout(r, 100));
      expect(t.connections()).toBe(0);
      expect(existsSync(join(b.root, 'x'))).toBe(false);
      expect(a.stats().errors.E_DENIED).toBe(1);
      // The node goes on: the listed target works.
      await copy(`${a.url}/f`, `${b.url}/ok`);
      expect(readFileSync(join(b.root, 'ok', 'f'), 'utf8')).toBe('data');
    } finally {
      t.server.close();
    }
  });

  it('a COPY to an allowed target works, a listed name allowing the address it resolves to; the CLI says E_DENIED with exit 5', async () => {
    const b = await serve({ root: join(work, 'allow', 'b'), auth: false });
    nodes.push(b);
    const a = await cliNode(join(work, 'allow', 'a'), ['--copy-to', `localhost:${b.address.port}`]);
    await send(join(src, 'tree'), `${a.url}/in`);
    const s = await copy(`${a.url}/in/tree`, `127.0.0.1:${b.address.port}/copied`);
    expect(s.files).toBe(51);
    expect(await compareTrees(join(src, 'tree'), join(b.root, 'copied', 'tree'))).toEqual([]);
    // 8 streams of 64 MiB blocks: a used to take them whenever the receiving node advertised
    // such blocks (a pool of 8 x 2 + 4 of them, 1.3 GiB); its own block limit refuses them
    // now, before any pool exists.
    const peak = procKiB(a.pid, 'VmHWM');
    await expect(copy(`${a.url}/in/tree`, `127.0.0.1:${b.address.port}/big`, { streams: 8, blockSize: 64 * MiB })).rejects.toMatchObject({
      code: 'E_LIMIT',
    });
    expect(procKiB(a.pid, 'VmHWM') - peak).toBeLessThan(32 * MiB);
    expect(existsSync(join(b.root, 'big'))).toBe(false);
    const denied = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'copy', `${a.url}/in/tree`, `127.0.0.1:${b.address.port + 1}/x`, '-q'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (status) => resolve({ status, stderr }));
    });
    expect(denied.status).toBe(5);
    expect(denied.stderr).toMatch(/E_DENIED.*fix: .*--copy-to/);
  });
});

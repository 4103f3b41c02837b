// The storage node end to end through the SDK on loopback: authentication, capacity, per-peer
// rate limits, a stalled peer beside a healthy transfer, pull, listing, readv, third-party
// copy, transfer events and the Prometheus endpoint.
import { mkdirSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, connect, copy, get, ls, send, serve, serveMetrics, type StorageNode, type TransferInfo } from '../dist/sdk/index.js';
import { freshDir, randomFile, smallTree } from './helpers.js';

const MiB = 1 << 20;
const TOKEN = 'a token the tests share, 32 chars';
let work: string;
let src: string;
let node: StorageNode;
/** The node `node` may copy to (its copyTo). */
let other: StorageNode;

beforeAll(async () => {
  work = freshDir('node');
  src = join(work, 'src');
  mkdirSync(join(src, 'tree'), { recursive: true });
  smallTree(join(src, 'tree'), 600);
  randomFile(join(src, 'tree', 'big.bin'), 9 * MiB);
  mkdirSync(join(src, 'files'));
  for (let i = 0; i < 100; i++) randomFile(join(src, 'files', `f${i}`), 30_000 + i * 977);
  other = await serve({ root: join(work, 'other-root'), token: TOKEN });
  node = await serve({ root: join(work, 'root'), token: TOKEN, copyTo: [other.url] });
  await send(src, `${node.url}/`, { token: TOKEN });
});

afterAll(async () => {
  await node?.close();
  await other?.close();
});

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ code });
}

describe('authentication', () => {
  it('a wrong or missing token gets E_AUTH; a node without a token or auth: false refuses to start', async () => {
    await expectCode(connect(node.url, { token: 'not the token, but long enough' }), 'E_AUTH');
    await expectCode(connect(node.url, {}), 'E_AUTH');
    await expectCode(send(join(src, 'files', 'f1'), `${node.url}/x`, { token: 'not the token, but long enough' }), 'E_AUTH');
    expect(existsSync(join(node.root, 'x'))).toBe(false);
    await expectCode(serve({ root: join(work, 'no-token') }), 'E_USAGE');
    await expectCode(serve({ root: join(work, 'open'), auth: false, host: '0.0.0.0' }), 'E_USAGE');
    // The token can come from a file.
    writeFileSync(join(work, 'token'), `${TOKEN}\n`, { mode: 0o600 });
    const c = await connect(node.url, { tokenFile: join(work, 'token') });
    expect((await c.list('')).map((e) => e.name)).toEqual(['src']);
    c.close();
  });
});

describe('pull, list, readv and third-party copy', () => {
  it('get pulls a tree back byte for byte, with modes, mtimes and links', async () => {
    const dest = join(work, 'pulled');
    const s = await get(`${node.url}/src/tree`, dest, { token: TOKEN, streams: 3 });
    expect(s.files).toBe(602);
    expect(await compareTrees(join(src, 'tree'), join(dest, 'tree'))).toEqual([]);
    await expectCode(get(`${node.url}/src/nope`, join(work, 'nope'), { token: TOKEN }), 'E_NOT_FOUND');
    await expectCode(get(`${node.url}/../etc`, join(work, 'nope'), { token: TOKEN }), 'E_PATH_ESCAPE');
  });

  it('ls names kinds, sizes, modes and mtimes', async () => {
    const entries = await ls(`${node.url}/src/files`, { token: TOKEN });
    expect(entries).toHaveLength(100);
    const f7 = entries.find((e) => e.name === 'f7')!;
    expect(f7).toMatchObject({ kind: 'file', size: 30_000 + 7 * 977 });
    expect(Math.abs(f7.mtime.getTime() - Date.now())).toBeLessThan(3600_000);
    expect((await ls(`${node.url}/src`, { token: TOKEN })).map((e) => [e.name, e.kind])).toEqual([
      ['files', 'dir'],
      ['tree', 'dir'],
    ]);
  });

  it('readv of 1,024 segments across 100 files returns exactly the bytes of 1,024 single reads; 1,025 gets E_LIMIT and the connection goes on', async () => {
    const c = await connect(node.url, { token: TOKEN });
    expect(c.limits).toEqual({ maxReadvSegments: 1024, maxReadvSegment: 2 * MiB });
    const segs = Array.from({ length: 1024 }, (_, k) => {
      const f = (k * 37) % 100;
      return { path: `src/files/f${f}`, offset: (k * 7919) % 40_000, length: 1 + ((k * 104_729) % 5000) };
    });
    const vectored = await c.readv(segs);
    const single = [];
    for (const s of segs) single.push(await c.read(s.path, s.offset, s.length));
    for (let k = 0; k < segs.length; k++) {
      const s = segs[k]!;
      const file = readFileSync(join(src, 'files', s.path.split('/').at(-1)!));
      const want = file.subarray(s.offset, s.offset + s.length);
      expect(vectored[k]!.equals(want), `segment ${k}`).toBe(true);
      expect(single[k]!.equals(want), `single read ${k}`).toBe(true);
    }
    await expectCode(c.readv([...segs, segs[0]!]), 'E_LIMIT');
    await expectCode(c.readv([{ path: 'src/files/f1', offset: 0, length: 2 * MiB + 1 }]), 'E_LIMIT');
    const after = await c.readv(segs.slice(0, 3));
    expect(after.map((b) => b.length)).toEqual(segs.slice(0, 3).map((s) => s.length));
    const settled = await c.readvSettled([
      { path: 'src/files/f2', offset: 0, length: 4 },
      { path: 'src/missing', offset: 0, length: 4 },
    ]);
    expect(settled[0]!.data!.length).toBe(4);
    expect(settled[1]!.error!.code).toBe('E_NOT_FOUND');
    c.close();
  });

  it('copy has one node push to another; both tables record it and the trees are identical', async () => {
    const seen: number[] = [];
    const s = await copy(`${node.url}/src/tree`, `${other.url}/copied`, { token: TOKEN, onProgress: (p) => seen.push(p.bytesDone) });
    expect(s.files).toBe(602);
    expect(await compareTrees(join(src, 'tree'), join(other.root, 'copied', 'tree'))).toEqual([]);
    expect(node.transfers().recent.find((t) => t.direction === 'copy')).toMatchObject({ outcome: 'ok', path: 'src/tree' });
    expect(other.transfers().recent.find((t) => t.direction === 'in')).toMatchObject({ outcome: 'ok', path: 'copied' });
    await expectCode(copy(`${node.url}/src/nope`, `${other.url}/x`, { token: TOKEN }), 'E_NOT_FOUND');
  });
});

describe('file creation', () => {
  it('links files that arrive in one piece in from O_TMPFILE; LONGHAUL_NO_TMPFILE forces temporary names, with the reason in stats', async () => {
    // 100 files of 30-127 kB in 4 MiB blocks: a file that straddles a block boundary arrives
    // in two pieces and is written under a temporary name.
    const before = node.stats();
    await send(join(src, 'files'), `${node.url}/tmpfile-on`, { token: TOKEN, blockSize: 4 << 20 });
    const on = node.stats();
    expect(on.filesLinked - before.filesLinked).toBeGreaterThanOrEqual(98);
    expect(on.filesLinked - before.filesLinked + on.filesRenamed - before.filesRenamed).toBe(100);
    expect(on.lastFileCreation).toMatch(/^files in one piece: O_TMPFILE \+ link/);
    expect(await compareTrees(join(src, 'files'), join(node.root, 'tmpfile-on', 'files'))).toEqual([]);
    process.env.LONGHAUL_NO_TMPFILE = '1';
    try {
      await send(join(src, 'files'), `${node.url}/tmpfile-off`, { token: TOKEN });
    } finally {
      delete process.env.LONGHAUL_NO_TMPFILE;
    }
    const off = node.stats();
    expect(off.filesLinked - on.filesLinked).toBe(0);
    expect(off.filesRenamed - on.filesRenamed).toBe(100);
    expect(off.lastFileCreation).toMatch(/temporary name \+ rename for every file: disabled by LONGHAUL_NO_TMPFILE/);
    expect(await compareTrees(join(src, 'files'), join(node.root, 'tmpfile-off', 'files'))).toEqual([]);
  });
});

describe('capacity', () => {
  it('a transfer that does not fit is refused with E_CAPACITY before any byte is written', async () => {
    const small = await serve({ root: join(work, 'small-root'), auth: false, capacity: '8M' });
    try {
      const e = await send(join(src, 'tree'), `${small.url}/in`).catch((err: unknown) => err);
      expect(e).toMatchObject({ code: 'E_CAPACITY' });
      expect(String((e as Error).message)).toMatch(/needs \d+ bytes, \d+ are free/);
      expect(readdirSync(small.root)).toEqual(['.longhaul']);
      await send(join(src, 'files'), `${small.url}/in`);
      const st = small.stats();
      expect(st.stored).toBe(Array.from({ length: 100 }, (_, i) => 30_000 + i * 977).reduce((a, b) => a + b));
      expect(st.free).toBe(8 * MiB - st.stored);
      expect(st.errors.E_CAPACITY).toBe(1);
    } finally {
      await small.close();
    }
  });
});

describe('rate limits and isolation', () => {
  it('a per-peer limit holds within 10% over a 10 s transfer on 4 streams', async () => {
    const rate = 6 * MiB;
    const limited = await serve({ root: join(work, 'limited-root'), auth: false, peerRates: { '127.0.0.1': rate } });
    try {
      mkdirSync(join(work, 'ten-seconds'));
      randomFile(join(work, 'ten-seconds', 'f'), 60 * MiB);
      const s = await send(join(work, 'ten-seconds', 'f'), `${limited.url}/in`, { streams: 4, blockSize: MiB });
      const measured = s.bytes / s.seconds;
      expect(s.seconds).toBeGreaterThan(8);
      expect(measured / rate).toBeGreaterThan(0.9);
      expect(measured / rate).toBeLessThan(1.1);
      const limit = limited.stats().limits[0]!;
      expect(limit).toMatchObject({ scope: 'peer', peer: '127.0.0.1', rate, passed: 60 * MiB });
    } finally {
      await limited.close();
    }
  }, 60_000);

  it('a peer that stops reading does not slow another transfer', async () => {
    const n = await serve({ root: join(work, 'iso-root'), auth: false });
    try {
      mkdirSync(join(work, 'stall'));
      randomFile(join(work, 'stall', 'f'), 64 * MiB);
      await send(join(work, 'stall', 'f'), `${n.url}/stall`);
      const alone = await send(join(src, 'tree', 'big.bin'), `${n.url}/alone`);
      // A raw client pulls a 64 MiB file on one stream and never reads its data connection:
      // more than the socket buffers hold, so the node's sender blocks.
      const stalled = await stalledPull(n.address.port, 'stall/f');
      try {
        await waitFor(() => n.transfers().active.some((t) => t.direction === 'out'));
        const beside = await send(join(src, 'tree', 'big.bin'), `${n.url}/beside`);
        const active = n.transfers().active;
        expect(active.map((t) => t.direction)).toEqual(['out']);
        expect(active[0]!.bytesDone).toBeLessThan(64 * MiB);
        // "Full speed": within 2x of the same transfer alone, plus scheduling noise.
        expect(beside.seconds).toBeLessThan(2 * alone.seconds + 0.5);
        expect(readFileSync(join(n.root, 'beside', 'big.bin')).equals(readFileSync(join(src, 'tree', 'big.bin')))).toBe(true);
      } finally {
        stalled.forEach((s) => s.destroy());
      }
      await waitFor(() => n.transfers().active.length === 0);
      expect(n.transfers().recent.find((t) => t.direction === 'out')).toMatchObject({ outcome: 'failed' });
    } finally {
      await n.close();
    }
  }, 60_000);
});

describe('shutdown', () => {
  it('close({ drain }) lets a running transfer finish and refuses new ones with E_BUSY', async () => {
    const n = await serve({ root: join(work, 'drain-root'), auth: false, rate: 8 * MiB });
    const running = send(join(src, 'tree', 'big.bin'), `${n.url}/slow`);
    await waitFor(() => n.transfers().active.length === 1);
    const closing = n.close({ drain: 30_000 });
    await new Promise((r) => setTimeout(r, 100));
    await expectCode(send(join(src, 'files', 'f1'), `${n.url}/late`, { retries: 0 }), 'E_BUSY');
    const s = await running;
    await closing;
    expect(s.bytes).toBe(9 * MiB);
    expect(readFileSync(join(n.root, 'slow', 'big.bin')).equals(readFileSync(join(src, 'tree', 'big.bin')))).toBe(true);
    expect(existsSync(join(n.root, 'late'))).toBe(false);
  });
});

describe('events and metrics', () => {
  it('emits transfer start and end, and /metrics counters move as bytes move', async () => {
    const metrics = await serveMetrics(node, '127.0.0.1', 0);
    try {
      const scrape = async (): Promise<Map<string, number>> => {
        const text = await (await fetch(metrics.url)).text();
        const m = new Map<string, number>();
        for (const line of text.split('\n')) {
          if (!line || line.startsWith('#')) continue;
          const i = line.lastIndexOf(' ');
          m.set(line.slice(0, i), Number(line.slice(i + 1)));
        }
        return m;
      };
      const before = await scrape();
      const events: [string, TransferInfo][] = [];
      node.on('transfer:start', (t) => events.push(['start', t]));
      node.on('transfer:end', (t) => events.push(['end', t]));
      await send(join(src, 'tree', 'big.bin'), `${node.url}/metered`, { token: TOKEN });
      await waitFor(() => events.some(([k]) => k === 'end'));
      await expectCode(connect(node.url, { token: 'not the token, but long enough' }), 'E_AUTH');
      const after = await scrape();
      const key = 'longhaul_peer_received_bytes_total{peer="127.0.0.1"}';
      expect(after.get(key)! - (before.get(key) ?? 0)).toBe(9 * MiB);
      expect(after.get('longhaul_transfers_total{outcome="ok"}')! - before.get('longhaul_transfers_total{outcome="ok"}')!).toBe(1);
      expect(after.get('longhaul_stored_bytes')! - before.get('longhaul_stored_bytes')!).toBe(9 * MiB);
      expect(after.get('longhaul_pool_buffers')).toBe(16);
      expect(after.get('longhaul_memory_budget_bytes')).toBe(1 << 30);
      expect(after.get('longhaul_memory_held_bytes')).toBe(16 * 4 * MiB);
      // A 9 MiB file spans three blocks: written under a temporary name and renamed.
      const named = (how: string) =>
        after.get(`longhaul_files_named_total{how="${how}"}`)! - before.get(`longhaul_files_named_total{how="${how}"}`)!;
      expect([named('linked'), named('renamed')]).toEqual([0, 1]);
      const authErrors = 'longhaul_errors_total{code="E_AUTH"}';
      expect(after.get(authErrors)! - (before.get(authErrors) ?? 0)).toBe(1);
      const ends = events.filter(([k]) => k === 'end').map(([, t]) => t);
      expect(events[0]![0]).toBe('start');
      expect(ends.at(-1)).toMatchObject({ direction: 'in', path: 'metered', outcome: 'ok', bytesDone: 9 * MiB });
      expect(await (await fetch(metrics.url.replace('/metrics', '/other'))).status).toBe(404);
    } finally {
      node.removeAllListeners();
      await metrics.close();
    }
  });
});

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

// --- a raw pull client that stops reading (docs/PROTOCOL.md) ---

function frame(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32LE(body.length + 1, 0);
  head[4] = type;
  return Buffer.concat([head, body]);
}

function readFrames(sock: Socket, count: number): Promise<{ type: number; body: Buffer }[]> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const out: { type: number; body: Buffer }[] = [];
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5 && buf.length >= 4 + buf.readUInt32LE(0)) {
        const len = buf.readUInt32LE(0);
        out.push({ type: buf[4]!, body: buf.subarray(5, 4 + len) });
        buf = buf.subarray(4 + len);
        if (out.length === count) {
          sock.off('data', onData);
          resolve(out);
          return;
        }
      }
    };
    sock.on('data', onData);
    sock.once('error', reject);
  });
}

async function stalledPull(port: number, path: string): Promise<Socket[]> {
  const open = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = netConnect(port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
  const ctl = await open();
  const u16 = (v: number): Buffer => Buffer.from([v & 0xff, v >> 8]);
  const u32 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return b;
  };
  const p = Buffer.from(path);
  const hello = frame(
    0x01,
    Buffer.concat([Buffer.from('LONGHAUL'), u16(1), u16(1), Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), Buffer.alloc(16)]),
  );
  const getReq = frame(0x10, Buffer.concat([u16(p.length), p, u16(1), u32(1 << 20)]));
  const replies = readFrames(ctl, 2);
  ctl.write(Buffer.concat([hello, getReq]));
  const [ok, manifest] = await replies;
  expect(ok!.type).toBe(0x02);
  expect(manifest!.type).toBe(0x03);
  const token = Buffer.alloc(16, 7);
  ctl.write(frame(0x04, Buffer.concat([token, u16(1)])));
  const data = await open();
  data.write(frame(0x05, Buffer.concat([token, u16(0)])));
  // Never read: the node's send fills the socket buffers and waits.
  data.pause();
  return [ctl, data];
}

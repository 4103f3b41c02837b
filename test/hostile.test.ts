// A node facing a hand-crafted protocol session: manifests that try to leave the root are
// refused with E_PATH_ESCAPE before anything is written, malformed frames get clear errors,
// and the node keeps serving.
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, send, serve, type StorageNode } from '../dist/sdk/index.js';
import { native } from '../dist/sdk/native.js';
import { frame, hello, manifest, u16, u32, u64 } from './frames.js';
import { freshDir } from './helpers.js';

let work: string;
let node: StorageNode;

beforeAll(async () => {
  work = freshDir('hostile');
  mkdirSync(join(work, 'outside'));
  node = await serve({ root: join(work, 'root'), auth: false });
});

afterAll(async () => {
  await node?.close();
});

const HELLO = hello();

/** Sends `bytes` and collects frames until an ERROR or READY frame, or the socket closes. */
function exchange(bytes: Buffer[]): Promise<{ type: number; code?: string; message?: string }[]> {
  return new Promise((resolve, reject) => {
    const sock: Socket = connect(node.address.port, node.address.host);
    let buf = Buffer.alloc(0);
    const frames: { type: number; code?: string; message?: string }[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('no answer in 10 s'));
    }, 10_000);
    sock.on('connect', () => {
      for (const b of bytes) sock.write(b);
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5 && buf.length >= 4 + buf.readUInt32LE(0)) {
        const len = buf.readUInt32LE(0);
        const type = buf[4]!;
        const body = buf.subarray(5, 4 + len);
        buf = buf.subarray(4 + len);
        if (type === 0x7f) {
          const n = body[0]!;
          const code = body.subarray(1, 1 + n).toString();
          const m = body.readUInt16LE(1 + n);
          frames.push({ type, code, message: body.subarray(3 + n, 3 + n + m).toString() });
        } else frames.push({ type });
        if (type === 0x7f || type === 0x04) {
          clearTimeout(timer);
          sock.destroy();
          resolve(frames);
          return;
        }
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(frames);
    });
  });
}

/** A control connection that keeps every frame it receives. */
function controlSession(): Promise<{ sock: Socket; frames: { type: number; body: Buffer }[]; next: (type: number) => Promise<Buffer> }> {
  return new Promise((resolve, reject) => {
    const sock = connect(node.address.port, node.address.host);
    const frames: { type: number; body: Buffer }[] = [];
    const waiters: (() => void)[] = [];
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5 && buf.length >= 4 + buf.readUInt32LE(0)) {
        const len = buf.readUInt32LE(0);
        frames.push({ type: buf[4]!, body: Buffer.from(buf.subarray(5, 4 + len)) });
        buf = buf.subarray(4 + len);
        for (const w of waiters.splice(0)) w();
      }
    });
    sock.on('error', () => {});
    const next = (type: number): Promise<Buffer> =>
      new Promise((res, rej) => {
        const deadline = setTimeout(() => rej(new Error(`no frame ${type} in 10 s`)), 10_000);
        const check = (): void => {
          const i = frames.findIndex((f) => f.type === type || f.type === 0x7f);
          if (i < 0) return void waiters.push(check);
          clearTimeout(deadline);
          const [f] = frames.splice(i, 1);
          if (f!.type !== type) return rej(new Error(`ERROR ${f!.body.subarray(1, 1 + f!.body[0]!).toString()}`));
          res(f!.body);
        };
        check();
      });
    sock.on('connect', () => resolve({ sock, frames, next }));
    sock.on('error', reject);
  });
}

const entry = (path: string, kind: 'dir' | 'file' | 'symlink', extra: object = {}) => ({ path, kind, mode: 0o644, ...extra });

describe('hostile manifests', () => {
  const cases: [string, ReturnType<typeof entry>[], number][] = [
    ['../x', [entry('../x', 'file', { size: 5, offset: 0 })], 5],
    ['/etc/x', [entry('/etc/x', 'file', { size: 5, offset: 0 })], 5],
    ['a path through a symlink', [entry('l', 'symlink', { target: 'set in the test' }), entry('l/x', 'file', { size: 5, offset: 0 })], 5],
  ];
  for (const [name, entries, total] of cases) {
    it(`${name} is refused with E_PATH_ESCAPE and nothing is written`, async () => {
      const fixed = entries.map((e) => (e.kind === 'symlink' ? { ...e, target: join(work, 'outside') } : e));
      const index = native.encodeIndexUnchecked(fixed, total);
      const frames = await exchange([HELLO, manifest('in', index)]);
      expect(frames.map((f) => f.type)).toEqual([0x02, 0x7f]);
      expect(frames[1]!.code).toBe('E_PATH_ESCAPE');
      expect(readdirSync(join(work, 'outside'))).toEqual([]);
      expect(existsSync(join(work, 'x'))).toBe(false);
      expect(existsSync(join(node.root, 'x'))).toBe(false);
      expect(existsSync('/etc/x')).toBe(false);
    });
  }

  it('a destination through an existing symlink in the root is refused', async () => {
    symlinkSync(join(work, 'outside'), join(node.root, 'evil'));
    const src = join(work, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'f'), 'data');
    await expect(send(src, `${node.url}/evil`)).rejects.toMatchObject({ code: 'E_PATH_ESCAPE' });
    await expect(send(src, `${node.url}/evil/deeper`)).rejects.toMatchObject({ code: 'E_PATH_ESCAPE' });
    expect(readdirSync(join(work, 'outside'))).toEqual([]);
  });

  it('issue 29: top-level entries that reach into .longhaul are refused before anything is written', async () => {
    writeFileSync(join(work, 'canary'), 'precious\n');
    const before = readdirSync(join(node.root, '.longhaul')).sort();
    const attempts = [
      // The repro's tree (a directory named .longhaul holding a link), sent to the root itself.
      [entry('.longhaul', 'dir'), entry('.longhaul/stored.tmp', 'symlink', { target: join(work, 'canary') })],
      // A journal file, nested below its directories.
      [
        entry('.longhaul', 'dir'),
        entry('.longhaul/journal', 'dir'),
        entry('.longhaul/journal/0123456789abcdef.jnl', 'file', { size: 5, offset: 0 }),
      ],
    ];
    for (const entries of attempts) {
      const total = entries.reduce((n, e) => n + ((e as { size?: number }).size ?? 0), 0);
      const frames = await exchange([HELLO, manifest('', native.encodeIndexUnchecked(entries, total))]);
      expect(frames.at(-1)!.code).toBe('E_PATH_ESCAPE');
    }
    // Without its directories' entries, the index itself is refused.
    const orphan = native.encodeIndexUnchecked([entry('.longhaul/journal/0123456789abcdef.jnl', 'file', { size: 5, offset: 0 })], 5);
    expect((await exchange([HELLO, manifest('', orphan)])).at(-1)!.code).toBe('E_INDEX');
    for (const dest of ['.longhaul', '.longhaul/journal']) {
      const frames = await exchange([HELLO, manifest(dest, native.encodeIndexUnchecked([entry('f', 'file', { size: 1, offset: 0 })], 1))]);
      expect(frames.at(-1)!.code, dest).toBe('E_PATH_ESCAPE');
    }
    expect(readdirSync(join(node.root, '.longhaul')).sort()).toEqual(before);
    expect(readFileSync(join(work, 'canary'), 'utf8')).toBe('precious\n');
  });

  it('a destination with .. is refused', async () => {
    const frames = await exchange([HELLO, manifest('../up', native.encodeIndexUnchecked([entry('f', 'file', { size: 1, offset: 0 })], 1))]);
    expect(frames.at(-1)!.code).toBe('E_PATH_ESCAPE');
    expect(existsSync(join(work, 'up'))).toBe(false);
  });

  it('a damaged index is E_INDEX, an oversized frame E_LIMIT, garbage E_PROTOCOL', async () => {
    const index = native.encodeIndexUnchecked([entry('f', 'file', { size: 1, offset: 0 })], 1);
    index[index.length - 1]! ^= 0xff;
    expect((await exchange([HELLO, manifest('in', index)])).at(-1)!.code).toBe('E_INDEX');
    const huge = Buffer.concat([u32(0xffff_fff0), Buffer.from([0x01])]);
    expect((await exchange([huge])).at(-1)!.code).toBe('E_LIMIT');
    const garbage = frame(0x42, Buffer.from('hello'));
    expect((await exchange([garbage])).at(-1)!.code).toBe('E_PROTOCOL');
    const badMagic = frame(0x01, Buffer.concat([Buffer.from('NOTLONGH'), u16(1), u16(1), u64(1), Buffer.alloc(16)]));
    expect((await exchange([badMagic])).at(-1)!.code).toBe('E_PROTOCOL');
    const future = frame(0x01, Buffer.concat([Buffer.from('LONGHAUL'), u16(7), u16(9), u64(1), Buffer.alloc(16)]));
    expect((await exchange([future])).at(-1)!.code).toBe('E_VERSION');
  });

  it('a block whose bytes do not match its checksum is E_CHECKSUM and leaves no file', async () => {
    const c = await controlSession();
    const index = native.encodeIndexUnchecked([entry('victim.bin', 'file', { size: 10, offset: 0 })], 10);
    c.sock.write(Buffer.concat([HELLO, manifest('corrupt', index)]));
    await c.next(0x02);
    const ready = await c.next(0x04);
    const token = ready.subarray(0, 16);
    const data = connect(node.address.port, node.address.host);
    data.on('error', () => {});
    const header = frame(0x06, Buffer.concat([u64(0), u32(10), u64(12345)]));
    data.write(Buffer.concat([frame(0x05, Buffer.concat([token, u16(0)])), header, Buffer.from('0123456789')]));
    await expect(c.next(0x09)).rejects.toThrow(/E_CHECKSUM/);
    c.sock.destroy();
    data.destroy();
    const dir = join(node.root, 'corrupt');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('DONE after a data connection closed without its STREAM_END is E_PROTOCOL, not a wait', async () => {
    // A node waits for a sender's other streams once one closes early (a killed sender's
    // buffers still arrive); a sender that then says DONE will send nothing more.
    const c = await controlSession();
    const index = native.encodeIndexUnchecked([entry('never.bin', 'file', { size: 10, offset: 0 })], 10);
    c.sock.write(Buffer.concat([HELLO, manifest('closed-early', index)]));
    await c.next(0x02);
    const token = (await c.next(0x04)).subarray(0, 16);
    const data = connect(node.address.port, node.address.host);
    data.on('error', () => {});
    data.end(frame(0x05, Buffer.concat([token, u16(0)])));
    c.sock.write(frame(0x08, Buffer.concat([u64(0), u64(0)])));
    await expect(c.next(0x09)).rejects.toThrow(/E_PROTOCOL/);
    c.sock.destroy();
    expect(readdirSync(join(node.root, 'closed-early'))).toEqual([]);
  });

  it('a sender gone before its last STREAM_END: the session ends at that STREAM_END, not at the idle timeout', async () => {
    // The node waits for a gone sender's streams to deliver what they hold; the last may end
    // with its STREAM_END rather than close. (The idle timeout here is the default 60 s.)
    const c = await controlSession();
    const size = (4 << 20) + 10; // two blocks; the second, of 10 bytes, is sent
    const index = native.encodeIndexUnchecked([entry('half.bin', 'file', { size, offset: 0 })], size);
    c.sock.write(Buffer.concat([HELLO, manifest('gone-then-end', index)]));
    await c.next(0x02);
    const token = (await c.next(0x04)).subarray(0, 16);
    const data = connect(node.address.port, node.address.host);
    data.on('error', () => {});
    const cutOff = new Promise<void>((resolve) => data.on('close', () => resolve()));
    const XXH3_OF_DIGITS = 7918246353190764831n; // XXH3-64 of '0123456789'
    const xxh3 = Buffer.alloc(8);
    xxh3.writeBigUInt64LE(XXH3_OF_DIGITS);
    const block = frame(0x06, Buffer.concat([u64(4 << 20), u32(10), xxh3]));
    data.write(Buffer.concat([frame(0x05, Buffer.concat([token, u16(0)])), block, Buffer.from('0123456789')]));
    const session = () => node.transfers().active.find((t) => t.path.endsWith('gone-then-end'));
    // The block arrived: the data connection is attached.
    await expect.poll(() => session()?.bytesDone).toBe(10);
    c.sock.destroy();
    // Give the node time to see the control connection close first.
    await new Promise((r) => setTimeout(r, 300));
    expect(session(), 'still waiting for the stream').toBeDefined();
    data.write(frame(0x07, Buffer.concat([u64(1), u64(10)])));
    const ended = await Promise.race([cutOff.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
    expect(ended, 'the node closed the data connection').toBe(true);
    data.destroy();
    await expect.poll(() => node.transfers().recent.find((t) => t.path.endsWith('gone-then-end'))?.code).toBe('E_CANCELLED');
    expect(existsSync(join(node.root, 'gone-then-end', 'half.bin'))).toBe(false);
  });

  it('a connection that says nothing, or dribbles a byte at a time, is cut off with E_TIMEOUT', async () => {
    const strict = await serve({ root: join(work, 'strict-root'), handshakeTimeoutMs: 300, auth: false });
    try {
      for (const dribble of [false, true]) {
        const t = Date.now();
        const code = await new Promise<string | undefined>((resolve) => {
          const sock = connect(strict.address.port, strict.address.host);
          let buf = Buffer.alloc(0);
          let i = 0;
          const timer = dribble ? setInterval(() => sock.write(HELLO.subarray(i, ++i)), 100) : undefined;
          sock.on('data', (d) => (buf = Buffer.concat([buf, d])));
          sock.on('error', () => {});
          sock.on('close', () => {
            clearInterval(timer);
            resolve(buf.length > 5 && buf[4] === 0x7f ? buf.subarray(6, 6 + buf[5]!).toString() : undefined);
          });
        });
        expect(code, dribble ? 'dribbling' : 'silent').toBe('E_TIMEOUT');
        expect(Date.now() - t).toBeLessThan(2000);
      }
    } finally {
      await strict.close();
    }
  });

  it('the node still serves a normal transfer afterwards', async () => {
    const parent = join(work, 'after-parent');
    mkdirSync(join(parent, 'after', 'd'), { recursive: true });
    writeFileSync(join(parent, 'after', 'd', 'f'), 'still here');
    await send(join(parent, 'after'), `${node.url}/ok`);
    expect(await compareTrees(parent, join(node.root, 'ok'))).toEqual([]);
  });
});

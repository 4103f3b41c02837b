// Issue 29, item 1: the node's own state (.longhaul: the stored-bytes account, resume journals)
// is out of every client's reach, and nothing a client or a planted link does makes the node
// (or a pulling client) write outside its root. Each case keeps a canary file next to the root
// and checks it byte for byte afterwards, and checks that the node still serves.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, connect, copy, get, ls, send, serve, type StorageNode } from '../dist/sdk/index.js';
import { native } from '../dist/sdk/native.js';
import { frame, takeFrames, u16, u32, u64 } from './frames.js';
import { CLI, freshDir, runCli } from './helpers.js';

const CANARY = 'precious\n';
const children: ChildProcess[] = [];

/** `longhaul serve --no-auth` as its own process, as the repro runs it. */
async function startCliNode(root: string): Promise<{ addr: string; exited: Promise<number | null> }> {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--no-auth', '--json', '--log-level', 'warn'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  const ev = JSON.parse(first) as { host: string; port: number };
  return { addr: `${ev.host}:${ev.port}`, exited };
}

/** Every path under `dir` (relative), not following links. */
function walk(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const rel = prefix ? `${prefix}/${name}` : name;
    out.push(rel);
    if (lstatSync(join(dir, name)).isDirectory()) out.push(...walk(join(dir, name), rel));
  }
  return out;
}

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

describe('issue 29: the state directory through the CLI (the reported repro)', () => {
  it('send of a directory named .longhaul holding a planted link is E_PATH_ESCAPE; the victim is untouched', async () => {
    const r = freshDir('d1');
    mkdirSync(join(r, 'root'));
    mkdirSync(join(r, 'evil', '.longhaul'), { recursive: true });
    writeFileSync(join(r, 'victim.txt'), CANARY);
    symlinkSync(join(r, 'victim.txt'), join(r, 'evil', '.longhaul', 'stored.tmp'));
    symlinkSync(join(r, 'victim.txt'), join(r, 'evil', '.longhaul', 'stored'));
    const node = await startCliNode(join(r, 'root'));
    const sent = await runCli(['send', join(r, 'evil', '.longhaul'), node.addr, '--json']);
    expect(sent.status).not.toBe(0);
    expect(sent.stdout + sent.stderr).toMatch(/E_PATH_ESCAPE/);
    // The same through a destination that names it, and one nested inside it.
    for (const dest of ['.longhaul', '.longhaul/journal', '.longhaul/x/y']) {
      const again = await runCli(['send', join(r, 'evil'), `${node.addr}/${dest}`, '--json']);
      expect(again.stdout + again.stderr, dest).toMatch(/E_PATH_ESCAPE/);
    }
    expect(readFileSync(join(r, 'victim.txt'), 'utf8')).toBe(CANARY);
    const state = join(r, 'root', '.longhaul');
    for (const name of readdirSync(state)) expect(lstatSync(join(state, name)).isSymbolicLink(), name).toBe(false);
    // The node still serves, and its account is a number it wrote, not the victim's bytes.
    mkdirSync(join(r, 'fine'));
    writeFileSync(join(r, 'fine', 'f'), 'data');
    const ok = await runCli(['send', join(r, 'fine'), node.addr, '-q']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(readFileSync(join(r, 'root', 'fine', 'f'), 'utf8')).toBe('data');
    // The account (stored bytes, parts, their bytes) is the node's own: the 4 bytes of fine/f.
    expect(readFileSync(join(state, 'stored'), 'utf8')).toMatch(/^4 0 0\n$/);
    expect(readFileSync(join(r, 'victim.txt'), 'utf8')).toBe(CANARY);
  });
});

describe('issue 29: the state directory against an in-process node', () => {
  let work: string;
  let node: StorageNode;
  /** The node `node` may copy to: a copy of .longhaul is refused for its path, not its target. */
  let other: StorageNode;
  const canary = (): string => readFileSync(join(work, 'canary'), 'utf8');

  beforeAll(async () => {
    work = freshDir('state-dir');
    writeFileSync(join(work, 'canary'), CANARY);
    other = await serve({ root: join(work, 'other-root'), auth: false });
    node = await serve({ root: join(work, 'root'), auth: false, copyTo: [other.url] });
  });

  afterAll(async () => {
    await node?.close();
    await other?.close();
  });

  it('no request may name .longhaul: pull, list, readv and copy are E_PATH_ESCAPE', async () => {
    const dest = freshDir('state-dir-get');
    await expect(get(`${node.url}/.longhaul`, dest)).rejects.toMatchObject({ code: 'E_PATH_ESCAPE' });
    await expect(get(`${node.url}/.longhaul/stored`, dest)).rejects.toMatchObject({ code: 'E_PATH_ESCAPE' });
    await expect(ls(`${node.url}/.longhaul`)).rejects.toMatchObject({ code: 'E_PATH_ESCAPE' });
    await expect(ls(`${node.url}/.longhaul/stored`)).rejects.toMatchObject({ code: 'E_PATH_ESCAPE' });
    const c = await connect(node.url);
    try {
      const [seg] = await c.readvSettled([{ path: '.longhaul/stored', offset: 0, length: 10 }]);
      expect(seg!.error?.code).toBe('E_PATH_ESCAPE');
    } finally {
      c.close();
    }
    await expect(copy(`${node.url}/.longhaul`, `${other.url}/stolen`)).rejects.toMatchObject({ code: 'E_PATH_ESCAPE' });
    expect(existsSync(join(other.root, 'stolen'))).toBe(false);
    expect((await ls(node.url)).map((e) => e.name)).not.toContain('.longhaul');
    expect(readdirSync(dest)).toEqual([]);
  });

  it('a link planted in the state directory by a local user is replaced, never written through', async () => {
    const state = join(node.root, '.longhaul');
    symlinkSync(join(work, 'canary'), join(state, 'stored.tmp'));
    const src = join(freshDir('state-dir-src'), 'tree');
    mkdirSync(src);
    writeFileSync(join(src, 'f'), 'x'.repeat(1000));
    await send(src, node.url);
    expect(canary()).toBe(CANARY);
    expect(lstatSync(join(state, 'stored')).isSymbolicLink()).toBe(false);
    expect(await compareTrees(src, join(node.root, 'tree'))).toEqual([]);
  });

  it('a node whose .longhaul is a symlink refuses to start', async () => {
    const root = join(freshDir('state-dir-link'), 'root');
    mkdirSync(root);
    mkdirSync(join(work, 'elsewhere'));
    symlinkSync(join(work, 'elsewhere'), join(root, '.longhaul'));
    await expect(serve({ root, auth: false })).rejects.toMatchObject({ code: 'E_PATH_ESCAPE' });
    expect(readdirSync(join(work, 'elsewhere'))).toEqual([]);
  });
});

describe('issue 29: a hostile node answering a pull', () => {
  /** A node that answers HELLO with HELLO_OK (no auth, resume offered) and GET with `index`. */
  function hostileNode(index: Buffer): Promise<{ server: Server; url: string }> {
    const server = createServer((sock: Socket) => {
      let buf = Buffer.alloc(0);
      sock.on('error', () => {});
      sock.on('data', (d) => {
        const taken = takeFrames(Buffer.concat([buf, d]));
        buf = taken.rest;
        for (const { type, body } of taken.frames) {
          if (type === 0x01) {
            // HELLO_OK: version 1, resume feature (bit 2), 8 streams, 4 MiB blocks, limits, no auth.
            sock.write(
              frame(
                0x02,
                Buffer.concat([
                  u16(1),
                  u64(4),
                  u16(8),
                  u32(4 << 20),
                  u32(1 << 20),
                  u32(1024),
                  u32(2 << 20),
                  Buffer.from([0]),
                  Buffer.alloc(16),
                ]),
              ),
            );
          } else if (type === 0x10) {
            const pathLen = body.readUInt16LE(0);
            const path = body.subarray(2, 2 + pathLen);
            const streams = body.readUInt16LE(2 + pathLen);
            const block = body.readUInt32LE(4 + pathLen);
            sock.write(frame(0x03, Buffer.concat([u16(path.length), path, u16(streams), u32(block), index])));
          }
        }
      });
    });
    return new Promise((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve({ server, url: `127.0.0.1:${(server.address() as { port: number }).port}` })),
    );
  }

  const dir = (path: string) => ({ path, kind: 'dir' as const, mode: 0o755 });
  const file = (path: string) => ({ path, kind: 'file' as const, mode: 0o644, size: 4, offset: 0 });
  const cases: [string, (ReturnType<typeof dir> | ReturnType<typeof file>)[], string][] = [
    ['.longhaul as a top-level directory', [dir('.longhaul'), dir('.longhaul/journal')], 'E_PATH_ESCAPE'],
    ['a journal file inside .longhaul', [dir('.longhaul'), dir('.longhaul/journal'), file('.longhaul/journal/x.jnl')], 'E_PATH_ESCAPE'],
    ['../x', [file('../x')], 'E_PATH_ESCAPE'],
  ];
  for (const [name, entries, code] of cases) {
    it(`${name} is refused and nothing is written in or beside DEST`, async () => {
      const total = entries.reduce((n, e) => n + ('size' in e ? e.size : 0), 0);
      const { server, url } = await hostileNode(native.encodeIndexUnchecked(entries, total));
      try {
        const base = freshDir('hostile-pull');
        writeFileSync(join(base, 'canary'), CANARY);
        const dest = join(base, 'dest');
        await expect(get(`${url}/data`, dest)).rejects.toMatchObject({ code });
        expect(existsSync(join(dest, '.longhaul')), 'no journal directory made').toBe(false);
        // DEST itself may have been made (it is the user's choice), but nothing in it or beside it.
        expect(walk(base).filter((p) => p !== 'dest')).toEqual(['canary']);
        if (existsSync(dest)) expect(readdirSync(dest)).toEqual([]);
        expect(readFileSync(join(base, 'canary'), 'utf8')).toBe(CANARY);
      } finally {
        server.close();
      }
    });
  }
});

// TLS through the SDK and the CLI: a node that makes its own certificate and says its
// fingerprint, clients that pin it (send, get, ls, copy between TLS nodes), and E_TLS for a
// plaintext client, a wrong pin and a TLS client of a plaintext node, with nothing written.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, connect, copy, get, LonghaulError, send, serve, type StorageNode } from '../dist/sdk/index.js';
import { CLI, freshDir, randomFile, smallTree, runCli } from './helpers.js';

const FINGERPRINT = /^sha256:[0-9a-f]{64}$/;
let work: string;
let src: string;
const nodes: StorageNode[] = [];
const children: ChildProcess[] = [];

async function refused(p: Promise<unknown>): Promise<LonghaulError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LonghaulError);
  return e as LonghaulError;
}

beforeAll(() => {
  work = freshDir('tls');
  src = join(work, 'src', 'tree');
  mkdirSync(src, { recursive: true });
  smallTree(src, 200);
  randomFile(join(src, 'blob'), 6 << 20);
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const n of nodes) await n.close();
});

describe('TLS', () => {
  it('the SDK pins a self-signed node: send, get, ls and copy arrive identical; mismatches are E_TLS', async () => {
    const b = await serve({ root: join(work, 'b'), auth: false, tls: true });
    nodes.push(b);
    const a = await serve({ root: join(work, 'a'), auth: false, tls: true, peerTlsPin: b.tlsFingerprint, copyTo: [b.url] });
    nodes.push(a);
    expect(a.tlsFingerprint).toMatch(FINGERPRINT);
    expect(a.tlsSelfSigned).toBe(true);
    expect(a.tlsFingerprint).not.toBe(b.tlsFingerprint);

    const s = await send(src, `${a.url}/in`, { tlsPin: a.tlsFingerprint });
    expect(s.files).toBe(202);
    expect(await compareTrees(src, join(work, 'a', 'in', 'tree'))).toEqual([]);

    const got = join(work, 'got');
    await get(`${a.url}/in/tree`, got, { tlsPin: a.tlsFingerprint });
    expect(await compareTrees(src, join(got, 'tree'))).toEqual([]);

    const c = await connect(a.url, { tlsPin: a.tlsFingerprint });
    try {
      expect((await c.list('in/tree')).map((e) => e.name)).toContain('blob');
    } finally {
      c.close();
    }

    await copy(`${a.url}/in/tree`, `${b.url}/copied`, { tlsPin: a.tlsFingerprint });
    expect(await compareTrees(src, join(work, 'b', 'copied', 'tree'))).toEqual([]);

    // A plaintext client, another node's pin, and a TLS client of a plaintext node.
    const plain = await serve({ root: join(work, 'plain'), auth: false });
    nodes.push(plain);
    const cases: [string, Promise<LonghaulError>][] = [
      ['plaintext', refused(send(src, `${a.url}/x1`, { retries: 0 }))],
      ['wrong pin', refused(send(src, `${a.url}/x2`, { tlsPin: b.tlsFingerprint, retries: 0 }))],
      ['TLS to plaintext', refused(send(src, `${plain.url}/x3`, { tlsPin: a.tlsFingerprint, retries: 0 }))],
    ];
    for (const [what, p] of cases) expect((await p).code, what).toBe('E_TLS');
    expect((await refused(send(src, `${a.url}/x4`, { tlsPin: 'sha256:12', retries: 0 }))).code).toBe('E_USAGE');
    for (const d of ['x1', 'x2']) expect(existsSync(join(work, 'a', d))).toBe(false);
    expect(existsSync(join(work, 'plain', 'x3'))).toBe(false);
  }, 120_000);

  it('serve --tls prints its fingerprint; send --tls-pin uses it; the CLI exits 5 with E_TLS without it', async () => {
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--root', join(work, 'cli-root'), '--listen', '127.0.0.1:0', '--no-auth', '--tls', '--json', '--log-level', 'warn'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child);
    const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
    const ev = JSON.parse(first) as { host: string; port: number; tls: { fingerprint: string; selfSigned: boolean } };
    expect(ev.tls.fingerprint).toMatch(FINGERPRINT);
    expect(ev.tls.selfSigned).toBe(true);
    const addr = `${ev.host}:${ev.port}`;

    const ok = await runCli(['send', src, `${addr}/in`, '--tls-pin', ev.tls.fingerprint, '--json']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(await compareTrees(src, join(work, 'cli-root', 'in', 'tree'))).toEqual([]);

    const plain = await runCli(['send', src, `${addr}/plain`, '--retries', '0']);
    expect(plain.status).toBe(5);
    expect(plain.stderr).toMatch(/E_TLS.*requires TLS/);
    const bad = await runCli(['ls', addr, '--tls-pin', 'not-a-fingerprint']);
    expect(bad.status).toBe(2);
    // A bad flag is E_USAGE naming the flag (issue 35, item 6).
    expect(bad.stderr).toMatch(/E_USAGE: --tls-pin not-a-fingerprint is not valid/);
    expect(existsSync(join(work, 'cli-root', 'plain'))).toBe(false);
  }, 120_000);
});

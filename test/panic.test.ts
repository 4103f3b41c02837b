// Issue 29, item 9: a panic in an engine thread is a bug, reported as E_PANIC with the thread's
// role, never retried by the SDK, and the node goes on serving. The panics are injected with the
// test-only LONGHAUL_TEST_PANIC=ROLE, read once per process: the side that panics runs as a CLI
// process of its own.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, get, ls, nodeStats, send, serve, type NodeStats, type StorageNode } from '../dist/sdk/index.js';
import { freshDir, randomFile, smallTree } from './helpers.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');
const SDK = pathToFileURL(join(import.meta.dirname, '..', 'dist', 'sdk', 'index.js')).href;
const TOKEN = 'panic tests share this token 0123456789';
let work: string;
let src: string;
let tokenFile: string;
const children: ChildProcess[] = [];

beforeAll(() => {
  work = freshDir('panic');
  src = join(work, 'src', 'tree');
  mkdirSync(src, { recursive: true });
  smallTree(src, 50);
  randomFile(join(src, 'blob'), 2 << 20);
  tokenFile = join(work, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
});

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** Polls `stats` until `done` holds (the node ends a session a moment after the client). */
async function statsUntil(read: () => Promise<NodeStats> | NodeStats, done: (s: NodeStats) => boolean): Promise<NodeStats> {
  let s = await read();
  for (let i = 0; i < 100 && !done(s); i++) {
    await new Promise((r) => setTimeout(r, 50));
    s = await read();
  }
  return s;
}

describe('issue 29: engine panics are E_PANIC, never retried, and the node keeps serving', () => {
  it("a panic in the node's writer thread fails the push with E_PANIC once, and the node serves the next client", async () => {
    const root = join(work, 'node-root');
    mkdirSync(join(root, 'kept'), { recursive: true });
    randomFile(join(root, 'kept', 'file'), 300_000);
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--json', '--log-level', 'error'],
      { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, LONGHAUL_TEST_PANIC: 'writer' } },
    );
    children.push(child);
    const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
    const { host, port } = JSON.parse(first) as { host: string; port: number };
    const url = `${host}:${port}`;

    let retried = 0;
    const err = await send(src, `${url}/in`, { token: TOKEN, retries: 3, retryDelayMs: 10, onRetry: () => retried++ }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'E_PANIC' });
    expect((err as Error).message).toContain('writer');
    expect(retried).toBe(0);
    const stats = await statsUntil(
      () => nodeStats(url, { token: TOKEN }),
      (s) => s.failed >= 1,
    );
    // One attempt reached the node: a retry would show as a second failed transfer.
    expect(stats.failed).toBe(1);
    expect(stats.errors.E_PANIC).toBe(1);
    // The node goes on: it lists and serves a pull (whose writers are this process's).
    expect((await ls(`${url}/kept`, { token: TOKEN })).map((e) => e.name)).toEqual(['file']);
    const out = join(work, 'pulled');
    await get(`${url}/kept`, out, { token: TOKEN });
    expect(await compareTrees(join(root, 'kept'), join(out, 'kept'))).toEqual([]);
  });

  it("a panic in the sender's reader thread fails the CLI's send with E_PANIC once, and the node takes the next push", async () => {
    const node: StorageNode = await serve({ root: join(work, 'root'), token: TOKEN });
    try {
      const run = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const c = spawn(process.execPath, [CLI, 'send', src, `${node.url}/bad`, '--token-file', tokenFile, '--retry-delay', '0'], {
          stdio: ['ignore', 'ignore', 'pipe'],
          env: { ...process.env, LONGHAUL_TEST_PANIC: 'reader' },
        });
        let stderr = '';
        c.stderr!.on('data', (d) => (stderr += d));
        c.on('close', (status) => resolve({ status, stderr }));
      });
      expect(run.stderr).toContain('E_PANIC');
      expect(run.stderr).toContain('reader');
      expect(run.status).toBe(70);
      const stats = await statsUntil(
        () => node.stats(),
        (s) => s.failed >= 1,
      );
      // The sender told the node why (ERROR E_PANIC), and made exactly one attempt.
      expect(stats.failed).toBe(1);
      expect(stats.errors.E_PANIC).toBe(1);
      await send(src, `${node.url}/good`, { token: TOKEN });
      expect(await compareTrees(src, join(work, 'root', 'good', 'tree'))).toEqual([]);
    } finally {
      await node.close();
    }
  });

  it("issue 30: a panic in any of the sender's threads reaches the SDK's send as E_PANIC (its code, not its message), and onRetry never runs", async () => {
    const node: StorageNode = await serve({ root: join(work, 'root-sdk'), token: TOKEN });
    // The SDK in a process of its own, where LONGHAUL_TEST_PANIC is read: one send with
    // retries, which reports the error it ended with and every retry it made.
    const script = `
      import { send } from ${JSON.stringify(SDK)};
      const retried = [];
      const err = await send(process.argv[1], process.argv[2], { token: ${JSON.stringify(TOKEN)}, scheduler: process.argv[3], retries: 3, retryDelayMs: 10, onRetry: (r) => retried.push(r.code) }).catch((e) => e);
      process.stdout.write(JSON.stringify({ code: err.code, message: err.message, cause: err.cause?.code, retried }));
    `;
    try {
      for (const [role, scheduler] of [
        ['reader', 'pipelined'],
        ['sender', 'pipelined'],
        ['worker', 'adaptive'],
      ] as const) {
        const out = await new Promise<string>((resolve) => {
          const c = spawn(process.execPath, ['--input-type=module', '-e', script, src, `${node.url}/sdk-${role}`, scheduler], {
            stdio: ['ignore', 'pipe', 'inherit'],
            env: { ...process.env, LONGHAUL_TEST_PANIC: role },
          });
          let stdout = '';
          c.stdout!.on('data', (d) => (stdout += d));
          c.on('close', () => resolve(stdout));
        });
        const r = JSON.parse(out) as { code: string; message: string; cause: string; retried: string[] };
        expect(r, role).toMatchObject({ code: 'E_PANIC', cause: 'E_PANIC', retried: [] });
        expect(r.message, role).toContain(role);
        expect(r.message, role).not.toMatch(/^E_/);
      }
      const stats = await statsUntil(
        () => node.stats(),
        (s) => s.failed >= 3,
      );
      // One attempt each: a retry would show as another failed transfer.
      expect(stats.failed).toBe(3);
      expect(stats.errors.E_PANIC).toBe(3);
    } finally {
      await node.close();
    }
  });
});

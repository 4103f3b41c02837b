// Issue 35, items 3 and 4: the node's signals and its log. A second SIGTERM stops a draining
// node at once (the client gets a retriable E_BUSY, and a re-run resumes); failed logins, E_IO,
// cancels and every transfer's end are logged with what an operator needs to read them alone.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { send } from '../dist/sdk/index.js';
import { CLI, finish, freshDir, randomFile, runCli } from './helpers.js';

type Line = Record<string, unknown> & { event?: string; msg?: string };

/** A node started through the CLI, its log lines (stderr) collected as they come. */
interface LoggedNode {
  child: ChildProcess;
  url: string;
  lines: Line[];
  /** Resolves with the first line (already logged or to come) that `pred` accepts. */
  waitFor(pred: (l: Line) => boolean, what: string): Promise<Line>;
  exited: Promise<number | null>;
}

let work: string;
let tokenFile: string;
const children: ChildProcess[] = [];

async function startNode(root: string, extra: string[]): Promise<LoggedNode> {
  const child = spawn(process.execPath, [CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--json', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const lines: Line[] = [];
  const waiters: { pred: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];
  createInterface({ input: child.stderr! }).on('line', (text) => {
    let l: Line;
    try {
      l = JSON.parse(text) as Line;
    } catch {
      l = { msg: text };
    }
    lines.push(l);
    for (const w of [...waiters])
      if (w.pred(l)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  const ev = JSON.parse(first) as { host: string; port: number };
  const waitFor = (pred: (l: Line) => boolean, what: string): Promise<Line> => {
    const seen = lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<Line>((resolve, reject) => {
      waiters.push({ pred, resolve });
      void exited.then(() => setTimeout(() => reject(new Error(`node exited before ${what}:\n${JSON.stringify(lines)}`)), 500));
    });
  };
  return { child, url: `${ev.host}:${ev.port}`, lines, waitFor, exited };
}

const ended = (l: Line): boolean => l.event === 'transfer:end';

beforeAll(() => {
  work = freshDir('node-log');
  tokenFile = join(work, 'token');
  writeFileSync(tokenFile, 'node log tests share this token 0123456789\n', { mode: 0o600 });
  randomFile(join(work, 'big.bin'), 40 << 20);
  mkdirSync(join(work, 'tree'));
  writeFileSync(join(work, 'tree', 'a.txt'), 'hello\n');
  randomFile(join(work, 'tree', 'b.bin'), 1 << 20);
});

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

describe('issue 35: a second signal stops a draining node', () => {
  it('SIGTERM drains, a second SIGTERM stops now: the client gets E_BUSY, and a re-run resumes', async () => {
    const root = join(work, 'signals');
    // 4 MiB/s: the 40 MiB push would take 10 s, far longer than the test lets it run.
    const node = await startNode(root, ['--no-auth', '--rate', '4M']);
    const sender = spawn(process.execPath, [CLI, 'send', join(work, 'big.bin'), `${node.url}/d`, '--retries', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(sender);
    const sent = finish(sender);
    await node.waitFor((l) => l.event === 'transfer:start', 'the push started');
    node.child.kill('SIGTERM');
    const draining = await node.waitFor((l) => l.event === 'draining', 'draining');
    expect(draining.msg).toMatch(/signal again to stop now/);
    // Draining: the push goes on.
    await new Promise((r) => setTimeout(r, 1000));
    expect(sender.exitCode).toBe(null);
    expect(node.child.exitCode).toBe(null);
    node.child.kill('SIGTERM');
    expect(await node.exited).toBe(0);
    const events = node.lines.map((l) => l.event);
    expect(events).toContain('stopping');
    expect(events.at(-1)).toBe('stopped');
    // It did not wait for the push: its end line says how far it got.
    const end = node.lines.find(ended)!;
    expect(end).toMatchObject({ outcome: 'failed', code: 'E_BUSY', direction: 'in', path: 'd' });
    expect(end.bytesDone as number).toBeLessThan(40 << 20);
    const client = await sent;
    expect(client.status).toBe(5);
    expect(client.stderr).toMatch(/^longhaul: E_BUSY: .*shutting down \(fix: retry later/m);

    // A re-run against the restarted node sends only what the first attempt did not deliver.
    const again = await startNode(root, ['--no-auth']);
    const rerun = await runCli(['send', join(work, 'big.bin'), `${again.url}/d`, '--json']);
    expect(rerun.status, rerun.stderr).toBe(0);
    const summary = JSON.parse(rerun.stdout.trim().split('\n').at(-1)!) as { bytes: number; perStreamBytes: number[] };
    expect(summary.bytes).toBe(40 << 20);
    expect(summary.perStreamBytes.reduce((a, b) => a + b, 0)).toBeLessThan(40 << 20);
  }, 60_000);
});

describe('issue 35: the node logs what an operator needs', () => {
  it('failed logins name the peer and the reason: a wrong token, no token, a TLS pin that does not match', async () => {
    const node = await startNode(join(work, 'logins'), ['--token-file', tokenFile]);
    writeFileSync(join(work, 'wrong'), 'this is not the right token at all\n');
    expect((await runCli(['ls', node.url, '--token-file', join(work, 'wrong')])).status).toBe(5);
    const wrong = await node.waitFor((l) => l.event === 'login:failed', 'the wrong token');
    expect(wrong).toMatchObject({ level: 40, peer: '127.0.0.1', code: 'E_AUTH', reason: expect.stringMatching(/wrong token/) });
    expect(wrong.msg).toBe('login from 127.0.0.1 refused: E_AUTH: authentication failed: wrong token');
    expect((await runCli(['ls', node.url], { LONGHAUL_TOKEN: '', LONGHAUL_TOKEN_FILE: '' })).status).toBe(5);
    const none = await node.waitFor((l) => l.event === 'login:failed' && /no token/.test(String(l.reason)), 'no token');
    expect(none).toMatchObject({ peer: '127.0.0.1', code: 'E_AUTH' });

    const tls = await startNode(join(work, 'tls'), ['--token-file', tokenFile, '--tls']);
    const pin = `sha256:${'ab'.repeat(32)}`;
    const r = await runCli(['ls', tls.url, '--token-file', tokenFile, '--tls-pin', pin]);
    expect(r.status).toBe(5);
    expect(r.stderr).toMatch(/E_TLS/);
    const refused = await tls.waitFor((l) => l.event === 'login:failed', 'the TLS refusal');
    expect(refused).toMatchObject({ peer: '127.0.0.1', code: 'E_TLS' });
    expect(refused.msg).toMatch(/^login from 127\.0\.0\.1 refused: E_TLS: /);
  }, 60_000);

  it('end lines of a push, a pull and a copy carry peer, direction, path, bytes, seconds, rate and outcome', async () => {
    const b = await startNode(join(work, 'ends-b'), ['--no-auth']);
    const a = await startNode(join(work, 'ends-a'), ['--no-auth', '--copy-to', b.url]);
    expect((await runCli(['send', join(work, 'tree'), `${a.url}/in`, '-q'])).status).toBe(0);
    expect((await runCli(['get', `${a.url}/in/tree`, join(work, 'got'), '-q'])).status).toBe(0);
    expect((await runCli(['copy', `${a.url}/in/tree`, `${b.url}/copied`, '-q'])).status).toBe(0);
    for (const direction of ['in', 'out', 'copy']) {
      const end = await a.waitFor((l) => ended(l) && l.direction === direction, `the ${direction} end`);
      expect(end).toMatchObject({ level: 30, peer: '127.0.0.1', outcome: 'ok', bytesDone: (1 << 20) + 6 });
      expect(end.path).toMatch(/^in/);
      expect(typeof end.seconds).toBe('number');
      expect(typeof end.rate).toBe('number');
      const word = direction === 'in' ? 'from' : direction === 'out' ? 'to' : 'for';
      expect(end.msg).toMatch(
        new RegExp(`^${direction} ${String(end.path)} ${word} 127\\.0\\.0\\.1 ok: 1\\.0 MiB in [\\d.]+m?s \\(.+/s\\)$`),
      );
    }
    // The receiving node of the copy logs it as a push from the first node.
    const copied = await b.waitFor(ended, 'the copy received');
    expect(copied).toMatchObject({ direction: 'in', path: 'copied', outcome: 'ok' });
  }, 60_000);

  it('an E_IO end line names the path and the OS error, in the message and as fields', async (ctx) => {
    const root = join(work, 'io');
    const node = await startNode(root, ['--no-auth']);
    const ro = join(root, 'ro');
    mkdirSync(ro);
    // Root ignores permission bits: an immutable directory refuses even root.
    const locked =
      process.getuid?.() === 0 ? spawnSync('chattr', ['+i', ro]).status === 0 : (spawnSync('chmod', ['0555', ro]).status ?? 1) === 0;
    if (!locked) ctx.skip();
    try {
      const r = await runCli(['send', join(work, 'tree'), `${node.url}/ro/x`, '--retries', '0']);
      expect(r.status).toBe(6);
      const end = await node.waitFor(ended, 'the failed push');
      expect(end).toMatchObject({ level: 40, outcome: 'failed', code: 'E_IO', path: 'ro/x', file: 'ro/x', operation: 'mkdir' });
      expect(end.errno).toMatch(/^E(PERM|ACCES)$/);
      expect(end.msg).toMatch(
        /^in ro\/x from 127\.0\.0\.1 failed: E_IO: mkdir "ro\/x": E(PERM|ACCES): (operation not permitted|permission denied); 0 B in /,
      );
    } finally {
      spawnSync('chattr', ['-i', ro]);
    }
  }, 60_000);

  it("a client's Ctrl-C and an SDK abort are logged as E_CANCELLED, not E_PROTOCOL", async () => {
    const node = await startNode(join(work, 'cancel'), ['--no-auth', '--rate', '4M']);
    const sender = spawn(process.execPath, [CLI, 'send', join(work, 'big.bin'), `${node.url}/ctrl-c`, '--retries', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(sender);
    const sent = finish(sender);
    await node.waitFor((l) => l.event === 'transfer:start' && l.path === 'ctrl-c', 'the push started');
    await new Promise((r) => setTimeout(r, 500));
    sender.kill('SIGINT');
    const client = await sent;
    expect(client.status).toBe(130);
    const end = await node.waitFor((l) => ended(l) && l.path === 'ctrl-c', 'the cancelled push');
    expect(end).toMatchObject({ outcome: 'failed', code: 'E_CANCELLED' });
    expect(end.msg).toMatch(/^in ctrl-c from 127\.0\.0\.1 failed: E_CANCELLED: transfer cancelled; /);

    const abort = new AbortController();
    const pushed = send(join(work, 'big.bin'), `${node.url}/aborted`, { signal: abort.signal, retries: 0 });
    await node.waitFor((l) => l.event === 'transfer:start' && l.path === 'aborted', 'the SDK push started');
    abort.abort();
    await expect(pushed).rejects.toMatchObject({ code: 'E_CANCELLED' });
    const aborted = await node.waitFor((l) => ended(l) && l.path === 'aborted', 'the aborted push');
    expect(aborted).toMatchObject({ outcome: 'failed', code: 'E_CANCELLED' });
  }, 60_000);
});

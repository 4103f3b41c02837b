// Issue 35, item 6: errors with the right code, exit status and advice. A busy or forbidden port
// is E_LISTEN (not E_CONNECT or E_INTERNAL); no fix text says "COMMAND"; CLI messages name CLI
// flags; a bad flag is E_USAGE and a bad file or environment value E_CONFIG, as ERRORS.md says.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ERROR_CODES, exitCodeFor, fixFor } from '../dist/sdk/index.js';
import { CLI, finish, freshDir, runCli } from './helpers.js';

let work: string;
let holder: Server;
let busy: number;
const children: ChildProcess[] = [];

/** The one error line: code, message and fix, as fail() prints it. */
const ERROR_LINE = /^longhaul: (E_[A-Z_]+): (.*) \(fix: (.*)\)\n$/;

function parsed(stderr: string): { code: string; message: string; fix: string } {
  const m = ERROR_LINE.exec(stderr);
  if (!m) throw new Error(`not one error line: ${JSON.stringify(stderr)}`);
  return { code: m[1]!, message: m[2]!, fix: m[3]! };
}

beforeAll(async () => {
  work = freshDir('cli-errors');
  // A port some other process holds.
  holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  busy = (holder.address() as { port: number }).port;
});

afterAll(() => {
  holder.close();
  for (const c of children) c.kill('SIGKILL');
});

describe('issue 35: errors name the right code, exit status and advice', () => {
  it('serve on a busy port: E_LISTEN, exit 3, "address in use", another port or ss to find the holder', async () => {
    const r = await runCli(['serve', '--root', join(work, 'a'), '--no-auth', '--listen', `127.0.0.1:${busy}`]);
    expect(r.status).toBe(3);
    expect(exitCodeFor('E_LISTEN')).toBe(3);
    const e = parsed(r.stderr);
    expect(e.code).toBe('E_LISTEN');
    expect(e.message).toMatch(new RegExp(`^cannot listen on 127\\.0\\.0\\.1:${busy}: address in use`));
    expect(e.fix).toBe(`give --listen another port, or find what holds it with \`ss -ltnp 'sport = :${busy}'\``);
  });

  it('a busy --metrics port: E_LISTEN, not E_INTERNAL, and the node does not stay up', async () => {
    const r = await runCli(['serve', '--root', join(work, 'b'), '--no-auth', '--listen', '127.0.0.1:0', '--metrics', `127.0.0.1:${busy}`]);
    expect(r.status).toBe(3);
    const e = parsed(r.stderr);
    expect(e.code).toBe('E_LISTEN');
    expect(e.message).toMatch(new RegExp(`^cannot listen on 127\\.0\\.0\\.1:${busy} for metrics: address in use \\(EADDRINUSE\\)`));
    expect(e.fix).toBe(`give --metrics another port, or find what holds it with \`ss -ltnp 'sport = :${busy}'\``);
  });

  it('a port below 1024 without the privilege: E_LISTEN with the reason', async (ctx) => {
    // Where unprivileged users may bind low ports, there is nothing to refuse.
    const lowest = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
    if (!(lowest > 1)) ctx.skip();
    // Root may bind it: as root, the node runs as nobody, with a root directory nobody may make.
    const asRoot = process.getuid?.() === 0;
    const dir = asRoot ? mkdtempSync(join(tmpdir(), 'lh-nobody-')) : work;
    if (asRoot) chmodSync(dir, 0o777);
    const r = await finish(
      spawn(process.execPath, [CLI, 'serve', '--root', join(dir, 'c'), '--no-auth', '--listen', '127.0.0.1:1'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      }),
    );
    if (asRoot) rmSync(dir, { recursive: true, force: true });
    expect(r.status, r.stderr).toBe(3);
    const e = parsed(r.stderr);
    expect(e.code).toBe('E_LISTEN');
    expect(e.message).toMatch(/^cannot listen on 127\.0\.0\.1:1: permission denied: a port below 1024 needs root or CAP_NET_BIND_SERVICE/);
    expect(e.fix).toBe('give --listen a port of 1024 or above, or run as root or with CAP_NET_BIND_SERVICE');
  });

  it('no fix text says COMMAND; E_USAGE names the command that was run', async () => {
    for (const code of ERROR_CODES) expect(fixFor(code), code).not.toMatch(/COMMAND/);
    const r = await runCli(['send', '/etc/hostname', '127.0.0.1:99999']);
    expect(r.status).toBe(2);
    expect(parsed(r.stderr)).toMatchObject({ code: 'E_USAGE', fix: 'see `longhaul send --help`' });
  });

  it("commander's own errors are the same one line: E_USAGE, exit 2, the command's help", async () => {
    const unknown = await runCli(['get', '--no-such-flag', 'a:1/x', 'b']);
    expect(unknown.status).toBe(2);
    expect(parsed(unknown.stderr)).toEqual({
      code: 'E_USAGE',
      message: "unknown option '--no-such-flag'",
      fix: 'see `longhaul get --help`',
    });
    const missing = await runCli(['send']);
    expect(missing.status).toBe(2);
    expect(parsed(missing.stderr)).toMatchObject({ code: 'E_USAGE', fix: 'see `longhaul send --help`' });
    expect(parsed(missing.stderr).message).toMatch(/^missing required argument/);
    const typo = await runCli(['sned']);
    expect(typo.status).toBe(2);
    expect(parsed(typo.stderr)).toMatchObject({ code: 'E_USAGE', fix: 'see `longhaul --help`' });
    expect(parsed(typo.stderr).message).toMatch(/unknown command 'sned'.*send/);
  });

  it('serve without a token names the CLI flags, not the SDK options', async () => {
    const r = await runCli(['serve', '--root', join(work, 'd'), '--listen', '127.0.0.1:0'], {
      LONGHAUL_TOKEN: '',
      LONGHAUL_TOKEN_FILE: '',
    });
    expect(r.status).toBe(2);
    const e = parsed(r.stderr);
    expect(e.code).toBe('E_USAGE');
    expect(e.message).toMatch(/--token-file FILE/);
    expect(e.message).toMatch(/LONGHAUL_TOKEN/);
    expect(e.message).toMatch(/--no-auth/);
    expect(e.message).not.toMatch(/tokenFile|auth: false/);
    expect(e.fix).toBe('see `longhaul serve --help`');
  });

  it('a client without a token for a node that needs one is told the flag', async () => {
    const tokenFile = join(work, 'token');
    writeFileSync(tokenFile, 'cli errors token 0123456789abcdef\n', { mode: 0o600 });
    const node = spawn(
      process.execPath,
      [CLI, 'serve', '--root', join(work, 'g'), '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--json'],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    children.push(node);
    const first = await new Promise<string>((resolve) => createInterface({ input: node.stdout! }).once('line', resolve));
    const { host, port } = JSON.parse(first) as { host: string; port: number };
    const r = await runCli(['ls', `${host}:${port}`], { LONGHAUL_TOKEN: '', LONGHAUL_TOKEN_FILE: '' });
    expect(r.status).toBe(5);
    const e = parsed(r.stderr);
    expect(e.code).toBe('E_AUTH');
    expect(e.message).toMatch(/--token-file FILE/);
  });

  it('--no-auth off loopback names --open; a TLS node refuses a plaintext client naming --tls-pin', async () => {
    const open = await runCli(['serve', '--root', join(work, 'e'), '--listen', '0.0.0.0:0', '--no-auth']);
    expect(open.status).toBe(2);
    expect(parsed(open.stderr).message).toMatch(/--open/);

    const node = spawn(
      process.execPath,
      [CLI, 'serve', '--root', join(work, 'f'), '--listen', '127.0.0.1:0', '--no-auth', '--tls', '--json'],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    children.push(node);
    const first = await new Promise<string>((resolve) => createInterface({ input: node.stdout! }).once('line', resolve));
    const { host, port } = JSON.parse(first) as { host: string; port: number };
    const plain = await runCli(['ls', `${host}:${port}`]);
    expect(plain.status).toBe(5);
    const e = parsed(plain.stderr);
    expect(e.code).toBe('E_TLS');
    expect(e.message).toMatch(/--tls-pin/);
    expect(e.message).toMatch(/--tls-ca/);
  });

  it('a bad flag is E_USAGE (exit 2) naming the flag; the same value from the file or environment is E_CONFIG naming it', async () => {
    const streams = await runCli(['send', '--streams', '0', '/etc/hostname', '127.0.0.1:1']);
    expect(streams.status).toBe(2);
    expect(parsed(streams.stderr)).toMatchObject({
      code: 'E_USAGE',
      message: '--streams 0 is not valid: expected auto or an integer in 1..256',
      fix: 'see `longhaul send --help`',
    });
    const block = await runCli(['send', '--block-size', '3', '/etc/hostname', '127.0.0.1:1']);
    expect(block.status).toBe(2);
    expect(parsed(block.stderr).code).toBe('E_USAGE');
    expect(parsed(block.stderr).message).toMatch(/^--block-size 3 is not valid: .*4K\.\.64M/);

    const env = await runCli(['send', '/etc/hostname', '127.0.0.1:1'], { LONGHAUL_STREAMS: '0' });
    expect(env.status).toBe(2);
    expect(parsed(env.stderr)).toMatchObject({ code: 'E_CONFIG', fix: fixFor('E_CONFIG') });
    expect(parsed(env.stderr).message).toMatch(/^streams = "0" \(from environment LONGHAUL_STREAMS\)/);
    const file = join(work, 'longhaul.config.json');
    writeFileSync(file, JSON.stringify({ blockSize: '3' }));
    const conf = await runCli(['send', '--config', file, '/etc/hostname', '127.0.0.1:1']);
    expect(conf.status).toBe(2);
    expect(parsed(conf.stderr).code).toBe('E_CONFIG');
    expect(parsed(conf.stderr).message).toContain(`(from ${file})`);

    // docs/ERRORS.md says the same.
    const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'ERRORS.md'), 'utf8');
    expect(doc).toMatch(/\| `E_USAGE` \| 2 \| a bad option or argument on the command line .*`--streams 0`, a `--block-size` outside/);
    expect(doc).toMatch(/\| `E_CONFIG` \| 2 \| .*The same bad value given as a flag is `E_USAGE`/);
    expect(doc).toMatch(/\| `E_LISTEN` \| 3 \| /);
  });
});

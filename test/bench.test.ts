// `longhaul bench HOST:PORT` through the CLI against node processes (issue 31, item 7): the size
// asked for crosses and is discarded, nothing lands under the root nor in the account, the node
// logs the transfer as a bench, the summary's figures are there, and the node's refusal and its
// token still hold.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CLI, freshDir, runCli } from './helpers.js';

let work: string;
let tokenFile: string;
const nodes: ChildProcess[] = [];

interface Node {
  addr: string;
  /** Everything the node has logged so far (JSON lines on stderr). */
  log: () => string;
}

async function startNode(root: string, extra: string[] = []): Promise<Node> {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--json', ...extra],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  nodes.push(child);
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  const ev = JSON.parse(first) as { type: string; host: string; port: number };
  expect(ev.type).toBe('listening');
  return { addr: `${ev.host}:${ev.port}`, log: () => log };
}

/** Every path under `dir`, the node's own state directory included. */
function tree(dir: string, rel = ''): string[] {
  return readdirSync(join(dir, rel), { withFileTypes: true }).flatMap((e) => {
    const p = join(rel, e.name);
    return e.isDirectory() ? [p, ...tree(dir, p)] : [p];
  });
}

async function until(what: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!what() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
}

beforeAll(() => {
  work = freshDir('bench');
  tokenFile = join(work, 'token');
  writeFileSync(tokenFile, 'bench tests share this token 0123456789\n', { mode: 0o600 });
});

afterAll(() => {
  for (const n of nodes) n.kill('SIGKILL');
});

describe('issue 31: longhaul bench, network-only mode', () => {
  it('moves the size asked, writes nothing under the root, leaves the account alone and is logged as a bench', async () => {
    const root = join(work, 'root');
    // A capacity smaller than the bench: a bench is not stored, so it is not refused either.
    const node = await startNode(root, ['--capacity', '16M']);
    const auth = ['--token-file', tokenFile];
    const before = tree(root);
    const statsBefore = await runCli(['stats', node.addr, '--json', ...auth]);
    expect(statsBefore.status, statsBefore.stderr).toBe(0);

    const size = 48 * 1024 * 1024 + 4321;
    const r = await runCli(['bench', node.addr, '--size', String(size), '--streams', '3', '--json', ...auth]);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const s = lines.find((l) => l.type === 'summary') as Record<string, any>;
    expect(s).toBeDefined();
    expect(s.bytes).toBe(size);
    expect(s.streams).toBe(3);
    expect((s.perStreamBytes as number[]).reduce((a, b) => a + b, 0)).toBe(size);
    expect(s.seconds).toBeGreaterThan(0);
    expect(s.bytesPerSecond).toBeGreaterThan(0);
    expect(s.gbitPerSecond).toBeCloseTo((s.bytesPerSecond * 8) / 1e9, 6);
    expect(s.clientCpu.seconds).toBeGreaterThan(0);
    expect(s.clientCpu.perGiB).toBeCloseTo(s.clientCpu.seconds / (size / 2 ** 30), 6);
    expect(s.nodeCpu.seconds).toBeGreaterThan(0);
    expect(s.nodeCpu.perGiB).toBeCloseTo(s.nodeCpu.seconds / (size / 2 ** 30), 6);
    expect(s.roundTrips).toBeGreaterThan(0);
    expect(typeof s.verdict.limit).toBe('string');
    expect(s.verdict.evidence.length).toBeGreaterThan(0);

    // The node's end line names the bench and its bytes.
    await until(() => node.log().includes('"event":"transfer:end"'));
    const end = node
      .log()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, any>)
      .find((l) => l.event === 'transfer:end');
    expect(end, node.log()).toMatchObject({ direction: 'bench', bytesDone: size, outcome: 'ok' });
    expect(end!.msg).toMatch(/^bench from 127\.0\.0\.1 ok: /);

    expect(tree(root)).toEqual(before);
    const statsAfter = await runCli(['stats', node.addr, '--json', ...auth]);
    const [b, a] = [JSON.parse(statsBefore.stdout), JSON.parse(statsAfter.stdout)];
    expect(a.stored).toBe(b.stored);
    expect(a.free).toBe(b.free);
    expect(a.reserved).toBe(b.reserved);
    expect(a.recent.some((t: Record<string, unknown>) => t.direction === 'bench' && t.bytesDone === size)).toBe(true);

    // Without --json, the human summary on stderr: the rate in both units, both ends' CPU, the verdict.
    const human = await runCli(['bench', node.addr, '--size', '8M', '--streams', '1', ...auth]);
    expect(human.status, human.stderr).toBe(0);
    expect(human.stderr).toMatch(/^bench: 8\.0 MiB in .*Gbit\/s\), 1 stream,/m);
    expect(human.stderr).toMatch(/^cpu: client \d+\.\d+ s \(\d+\.\d+ s\/GiB\), node \d+\.\d+ s/m);
    expect(human.stderr).toMatch(/^limited by: /m);
    expect(tree(root)).toEqual(before);
  });

  it('a node started with --no-bench refuses with E_DENIED, and a node with a token still wants it', async () => {
    const refusing = await startNode(join(work, 'refusing'), ['--no-bench']);
    const denied = await runCli(['bench', refusing.addr, '--size', '1M', '--token-file', tokenFile]);
    expect(denied.status).toBe(5);
    expect(denied.stderr).toMatch(/^longhaul: E_DENIED: .*--no-bench.*\(fix: /m);

    const open = await startNode(join(work, 'open'));
    const noToken = await runCli(['bench', open.addr, '--size', '1M'], { LONGHAUL_TOKEN: '', LONGHAUL_TOKEN_FILE: '' });
    expect(noToken.status).toBe(5);
    expect(noToken.stderr).toMatch(/^longhaul: E_AUTH: /m);
    expect(tree(join(work, 'open')).filter((p) => !p.startsWith('.longhaul'))).toEqual([]);
  });

  it('--verify none sends blocks with no checksum, and says so', async () => {
    const node = await startNode(join(work, 'unchecked'));
    const r = await runCli(['bench', node.addr, '--size', '20M', '--verify', 'none', '--json', '--token-file', tokenFile]);
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout.split('\n').filter(Boolean).at(-1)!) as Record<string, any>;
    expect(s).toMatchObject({ type: 'summary', bytes: 20 * 2 ** 20, verify: 'none' });
    const human = await runCli(['bench', node.addr, '--size', '4M', '--verify', 'none', '--token-file', tokenFile]);
    expect(human.status, human.stderr).toBe(0);
    expect(human.stderr).toMatch(/no checksum made or checked \(--verify none\)/);
    const both = await runCli(['bench', node.addr, '--verify', 'none', '--digest', 'blake3', '--token-file', tokenFile]);
    expect(both.status).toBe(2);
    expect(both.stderr).toMatch(/^longhaul: E_USAGE: --verify none makes no digest/m);
    // A send has no such mode: its config refuses it before anything connects.
    const send = await runCli(['send', work, `${node.addr}/x`, '--verify', 'none', '--token-file', tokenFile]);
    expect(send.status).toBe(2);
  });

  it('runs through the same session as a send: its --rate holds it and the verdict says so', async () => {
    const node = await startNode(join(work, 'rated'));
    const r = await runCli(['bench', node.addr, '--size', '12M', '--rate', '8M', '--json', '--token-file', tokenFile]);
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout.split('\n').filter(Boolean).at(-1)!) as Record<string, any>;
    expect(s.type).toBe('summary');
    expect(s.bytes).toBe(12 * 2 ** 20);
    expect(s.verdict.limit).toBe('rate limit');
    expect(s.verdict.evidence).toMatch(/--rate/);
  });

  it('refuses a path after HOST:PORT, a size of zero and a block size out of bounds before connecting', async () => {
    const path = await runCli(['bench', '127.0.0.1:1/some/dir', '--size', '1M']);
    expect(path.status).toBe(2);
    expect(path.stderr).toMatch(/^longhaul: E_USAGE: .*HOST:PORT/m);
    const zero = await runCli(['bench', '127.0.0.1:1', '--size', '0']);
    expect(zero.status).toBe(2);
    expect(zero.stderr).toMatch(/^longhaul: E_USAGE: --size/m);
    const block = await runCli(['bench', '127.0.0.1:1', '--block-size', '1K']);
    expect(block.status).toBe(2);
    expect(block.stderr).toMatch(/^longhaul: E_USAGE: --block-size must be in/m);
  });
});

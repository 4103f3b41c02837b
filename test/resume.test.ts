// Resume and faults end to end. The kill test runs the CLI's sender and node as processes and
// kills one of them with SIGKILL at random points (5 in CI; 20 on a 2 GiB tree with
// LONGHAUL_STRESS=1); each time the sender is started again, or retries by itself when the node
// was killed and restarted, and resumes. A relay between them counts every byte the sender
// sent. The fault tests put the relay between the SDK and an in-process node and make it flip a
// bit, stall, or drop every connection.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, send, serve, type StorageNode } from '../dist/sdk/index.js';
import { freshDir, randomFile, smallTree } from './helpers.js';
import { relay, type Relay } from './proxy.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');
const STRESS = process.env.LONGHAUL_STRESS === '1';
// The CLI's default block size (1 MiB), which these runs use.
const BLOCK = 1 << 20;
const STREAMS = 2;

let work: string;
let tokenFile: string;
const children = new Set<ChildProcess>();

function spawnCli(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

const exited = (c: ChildProcess): Promise<number | null> =>
  c.exitCode !== null || c.signalCode !== null
    ? Promise.resolve(c.exitCode)
    : new Promise((resolve) => c.once('exit', (code) => resolve(code)));

async function startNode(root: string): Promise<{ child: ChildProcess; address: string }> {
  const child = spawnCli(['serve', '--root', root, '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--json', '--log-level', 'warn']);
  child.stderr!.resume();
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  const ev = JSON.parse(first) as { host: string; port: number };
  return { child, address: `${ev.host}:${ev.port}` };
}

/** Every `.part` file and journal left under `root`. */
function leftovers(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.part') || e.name.endsWith('.jnl')) out.push(join(d, e.name));
    }
  };
  walk(root);
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(() => {
  work = freshDir('resume');
  tokenFile = join(work, 'token');
  writeFileSync(tokenFile, 'resume tests share this token 0123456789\n', { mode: 0o600 });
});

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

describe('kill -9 at random points', () => {
  let src: string;
  let dataBytes: number;
  let runs = 0;

  beforeAll(() => {
    src = join(work, 'kill-src', 'tree');
    mkdirSync(src, { recursive: true });
    // CI: 3 large files and 2,000 small ones, ~170 MiB; stress: ~2 GiB and 20,000 small files.
    const big = STRESS ? [512, 512, 384, 320, 256] : [72, 48, 40];
    big.forEach((mib, i) => randomFile(join(src, `large-${i}.bin`), (mib << 20) + 12_345 * i));
    smallTree(join(src, 'small'), STRESS ? 20_000 : 2_000);
    dataBytes = big.reduce((a, m, i) => a + (m << 20) + 12_345 * i, 0);
  });

  /**
   * Sends `src` through a counting relay, killing the sender or the node (`kinds`, in order)
   * once a random share of the data has passed each time (on average 90% of it over all the
   * kills, so the last attempt still has work); restarts the one killed (a killed node's
   * sender retries by itself). Returns the tree's bytes and the bytes the sender sent in all.
   */
  async function killRun(kinds: ('sender' | 'node')[]): Promise<{ total: number; sent: number; at: number[] }> {
    const root = join(work, `kill-root-${++runs}`);
    let node = await startNode(root);
    const proxy = await relay(node.address);
    const target = `${proxy.address}/dest`;
    const startSender = (): ChildProcess =>
      spawnCli(['send', src, target, '--token-file', tokenFile, '--json', '--retries', '20', '--retry-delay', '1']);
    let sender = startSender();
    const at: number[] = [];
    for (const [k, kind] of kinds.entries()) {
      const mark = proxy.bytesUp + Math.floor(((0.3 + Math.random() * 1.2) * dataBytes) / (kinds.length + 2));
      while (proxy.bytesUp < mark && sender.exitCode === null) await sleep(2);
      expect(sender.exitCode, `the transfer finished before kill ${k + 1}`).toBeNull();
      at.push(proxy.bytesUp);
      if (kind === 'sender') {
        sender.kill('SIGKILL');
        await exited(sender);
        sender = startSender();
      } else {
        node.child.kill('SIGKILL');
        await exited(node.child);
        node = await startNode(root);
        proxy.upstream = node.address;
      }
    }
    let stdout = '';
    let stderr = '';
    sender.stdout!.on('data', (d) => (stdout += d));
    sender.stderr!.on('data', (d) => (stderr += d));
    expect(await exited(sender), stderr).toBe(0);
    const summary = stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; bytes: number })
      .find((l) => l.type === 'summary')!;
    expect(await compareTrees(src, join(root, 'dest', 'tree'))).toEqual([]);
    expect(leftovers(root)).toEqual([]);
    await proxy.close();
    node.child.kill('SIGKILL');
    const r = { total: summary.bytes, sent: proxy.bytesUp, at };
    const report = {
      kills: kinds.map((k, i) => `${k}@${(at[i]! / 2 ** 20).toFixed(0)}MiB`).join(' '),
      dataMiB: +(r.total / 2 ** 20).toFixed(1),
      sentMiB: +(r.sent / 2 ** 20).toFixed(1),
      resentBlocksPerKill: +((r.sent - r.total) / BLOCK / kinds.length).toFixed(2),
      streams: STREAMS,
      blockMiB: BLOCK / 2 ** 20,
    };
    console.log(`kill test: ${JSON.stringify(report)}`);
    return r;
  }

  // Each attempt also sends its handshake and content index (a few hundred kB here).
  const indexAllowance = (attempts: number): number => (STRESS ? 3 : 0.4) * (1 << 20) * attempts;
  const timeout = STRESS ? 1_800_000 : 240_000;

  it(
    `a killed sender costs at most one block per stream (${STRESS ? 10 : 3} kills)`,
    async () => {
      // The kernel still delivers what a killed sender had buffered, and the node journals it:
      // only the block each stream was in the middle of is lost.
      const kills = STRESS ? 10 : 3;
      const { total, sent } = await killRun(Array(kills).fill('sender'));
      expect(sent).toBeLessThanOrEqual(total + kills * STREAMS * BLOCK + indexAllowance(kills + 1));
    },
    timeout,
  );

  it(
    `killing the sender or the node in turn (${STRESS ? 20 : 5} kills), the tree arrives identical`,
    async () => {
      // A killed node also loses what was in flight towards it and not yet journaled: the block
      // being written, and the TCP buffers on the way (the relay adds a hop), which the kernel's
      // limits bound, not ours.
      const kills = STRESS ? 20 : 5;
      const kinds = Array.from({ length: kills }, (_, k) => (k % 2 === 0 ? 'sender' : 'node') as const);
      const { total, sent } = await killRun(kinds);
      const tcpMax = (f: string): number => Number(readFileSync(`/proc/sys/net/ipv4/${f}`, 'utf8').trim().split(/\s+/)[2]);
      const inFlight = 2 * (tcpMax('tcp_rmem') + tcpMax('tcp_wmem'));
      const senderKills = kinds.filter((k) => k === 'sender').length;
      const bound =
        total + senderKills * STREAMS * BLOCK + (kills - senderKills) * STREAMS * (BLOCK + inFlight) + indexAllowance(kills + 1);
      expect(sent).toBeLessThanOrEqual(bound);
    },
    timeout,
  );
});

describe('the CLI', () => {
  it('sending (or getting) the same tree again moves nothing; --no-resume moves it all', async () => {
    const src = join(work, 'cli-src', 'tree');
    mkdirSync(src, { recursive: true });
    smallTree(src, 400);
    randomFile(join(src, 'blob'), 9 << 20);
    const node = await startNode(join(work, 'cli-root'));
    // Runs the CLI with --json and returns its summary line.
    type Summary = { bytes: number; bytesMoved: number; bytesAlready: number; resumedBytes: number; perStreamBytes: number[] };
    const summaryOf = async (args: string[]): Promise<Summary> => {
      const c = spawnCli([...args, '--token-file', tokenFile, '--json']);
      let out = '';
      c.stdout!.on('data', (d) => (out += d));
      c.stderr!.resume();
      expect(await exited(c)).toBe(0);
      return out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Summary & { type: string })
        .find((l) => l.type === 'summary')!;
    };
    const sendCli = (...flags: string[]) => summaryOf(['send', src, `${node.address}/d`, ...flags]);
    const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
    const first = await sendCli();
    expect(sum(first.perStreamBytes)).toBe(first.bytes);
    const again = await sendCli();
    expect(again.resumedBytes).toBe(again.bytes);
    expect(sum(again.perStreamBytes)).toBe(0);
    const all = await sendCli('--no-resume');
    expect(all.resumedBytes).toBe(0);
    expect(sum(all.perStreamBytes)).toBe(all.bytes);
    expect(await compareTrees(src, join(work, 'cli-root', 'd', 'tree'))).toEqual([]);

    // The same for get: pulling again fetches nothing, --no-resume fetches it all, and the
    // client's journal directory is gone.
    const getCli = (...flags: string[]) => summaryOf(['get', `${node.address}/d/tree`, join(work, 'cli-got'), ...flags]);
    // A pull names the whole tree in `bytes` and what travelled in `bytesMoved`, as a send does.
    expect(await getCli()).toMatchObject({ bytes: first.bytes, bytesMoved: first.bytes, bytesAlready: 0 });
    expect(await getCli()).toMatchObject({ bytes: first.bytes, bytesMoved: 0, bytesAlready: first.bytes });
    expect(await getCli('--no-resume')).toMatchObject({ bytes: first.bytes, bytesMoved: first.bytes, bytesAlready: 0 });
    expect(await compareTrees(src, join(work, 'cli-got', 'tree'))).toEqual([]);
    expect(existsSync(join(work, 'cli-got', '.longhaul'))).toBe(false);
    node.child.kill('SIGKILL');
  });
});

describe('faults on the wire', () => {
  let node: StorageNode;
  let proxy: Relay;
  let src: string;
  let n = 0;

  beforeAll(async () => {
    src = join(work, 'fault-src', 'tree');
    mkdirSync(src, { recursive: true });
    randomFile(join(src, 'a.bin'), 40 << 20);
    smallTree(join(src, 'small'), 300);
    node = await serve({ root: join(work, 'fault-root'), auth: false, idleTimeoutMs: 10_000 });
    proxy = await relay(node.url);
  });

  afterAll(async () => {
    await proxy.close();
    await node.close();
  });

  const dest = (): string => `${proxy.address}/f${++n}`;

  it('a flipped bit is caught (E_CHECKSUM), the attempt fails, and the retry resumes and repairs it', async () => {
    const to = dest();
    proxy.fault = { kind: 'flip', atByte: proxy.bytesUp + (20 << 20) + 777 };
    const s = await send(src, to, { retryDelayMs: 50 });
    expect(proxy.happened.at(-1)?.kind).toBe('flip');
    expect(s.attempts).toBeGreaterThanOrEqual(2);
    expect(s.retried[0]!.code).toBe('E_CHECKSUM');
    expect(s.resumedBytes).toBeGreaterThan(0);
    expect(await compareTrees(src, join(node.root, `f${n}`, 'tree'))).toEqual([]);
    expect(leftovers(node.root)).toEqual([]);
  });

  it('dropped connections are retried and resumed', async () => {
    const to = dest();
    const before = proxy.bytesUp;
    proxy.fault = { kind: 'drop', atByte: before + (24 << 20) };
    const s = await send(src, to, { retryDelayMs: 50 });
    expect(proxy.happened.at(-1)?.kind).toBe('drop');
    expect(s.attempts).toBeGreaterThanOrEqual(2);
    expect(s.resumedBytes).toBeGreaterThan(0);
    // The blocks the node had when the connections dropped were not sent again.
    expect(proxy.bytesUp - before).toBeLessThan(s.bytes + (24 << 20) - s.resumedBytes + STREAMS * BLOCK + (2 << 20));
    expect(await compareTrees(src, join(node.root, `f${n}`, 'tree'))).toEqual([]);
  });

  it('a stalled path times out with E_TIMEOUT instead of hanging, and frees the node', async () => {
    const to = dest();
    proxy.fault = { kind: 'stall', atByte: proxy.bytesUp + (8 << 20) };
    const t = Date.now();
    await expect(send(src, to, { ioTimeoutMs: 1500, retries: 0 })).rejects.toMatchObject({ code: 'E_TIMEOUT' });
    expect(Date.now() - t).toBeLessThan(9_000);
    // The node's side ends too (the sender closed; else its idle timeout) and keeps the journal for a resume.
    for (let i = 0; i < 100 && node.stats().active > 0; i++) await sleep(100);
    expect(node.stats().active).toBe(0);
    expect(existsSync(join(node.root, '.longhaul', 'journal'))).toBe(true);
  });
});

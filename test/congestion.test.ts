// Issue 31, item 3: the congestion control of the data streams is chosen per socket. `auto`
// takes BBR where this process may use it (the kernel says so on a fresh socket), a name asks
// for that algorithm, a bad one is E_USAGE before a byte moves. The sender reads the algorithm
// back from a data socket, so the summary is the kernel's word, not the option echoed.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, doctor, LonghaulError, send, serve, type StorageNode } from '../dist/sdk/index.js';
import { freshDir, runCli, smallTree } from './helpers.js';

const available = readFileSync('/proc/sys/net/ipv4/tcp_available_congestion_control', 'utf8').trim().split(/\s+/);
const allowed = readFileSync('/proc/sys/net/ipv4/tcp_allowed_congestion_control', 'utf8').trim().split(/\s+/);
const systemDefault = readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim();
// Root (CAP_NET_ADMIN) may set any loaded algorithm; others only the allowed ones.
const bbrUsable = available.includes('bbr') && (process.getuid?.() === 0 || allowed.includes('bbr'));

let work: string;
let src: string;
let node: StorageNode;

beforeAll(async () => {
  work = freshDir('congestion');
  src = join(work, 'src');
  mkdirSync(src);
  smallTree(src, 300);
  node = await serve({ root: join(work, 'root'), auth: false });
});

afterAll(async () => {
  await node?.close();
});

describe('issue 31: congestion control per data socket', () => {
  it('reno, asked for by name, is what the data streams run, and the tree arrives identical', async () => {
    // reno is built into every kernel and allowed to every user.
    const s = await send(src, `${node.url}/reno`, { congestion: 'reno', streams: 3 });
    expect(s.congestion).toBe('reno');
    expect(s.congestionNote).toBeUndefined();
    expect(await compareTrees(src, join(node.root, 'reno', 'src'))).toEqual([]);
  });

  it('auto (the default) runs BBR where this process may use it, and otherwise says why it kept the default', async () => {
    const s = await send(src, `${node.url}/auto`);
    if (bbrUsable) {
      expect(s.congestion).toBe('bbr');
      expect(s.congestionNote).toBeUndefined();
    } else {
      expect(s.congestion).toBe(systemDefault);
      expect(s.congestionNote).toMatch(/^bbr cannot be used here/);
    }
    expect(await compareTrees(src, join(node.root, 'auto', 'src'))).toEqual([]);
  });

  it('an algorithm the kernel does not have is E_USAGE, naming what it offers, and nothing is written', async () => {
    const err = await send(src, `${node.url}/none`, { congestion: 'nosuchcc' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LonghaulError);
    expect(err).toMatchObject({ code: 'E_USAGE', message: expect.stringContaining(`the kernel offers: ${available.join(' ')}`) });
    expect(existsSync(join(node.root, 'none'))).toBe(false);
  });

  it('a node sets its choice on the connections it accepts and reports it; a bad name fails its start', async () => {
    const n = await serve({ root: join(work, 'node-reno'), auth: false, congestion: 'reno' });
    try {
      expect(n.stats().congestion).toBe('reno');
      expect(n.stats().congestionNote).toBeNull();
    } finally {
      await n.close();
    }
    expect(node.stats().congestion).toBe(bbrUsable ? 'bbr' : systemDefault);
    await expect(serve({ root: join(work, 'node-bad'), auth: false, congestion: 'nosuchcc' })).rejects.toMatchObject({ code: 'E_USAGE' });
  });

  it('the CLI takes --congestion, refuses a malformed name as a config error, and doctor says what auto uses', async () => {
    const ok = await runCli(['send', src, `${node.url}/cli`, '--congestion', 'reno', '--json']);
    expect(ok.status, ok.stderr).toBe(0);
    const summary = ok.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => 'congestion' in l);
    expect(summary).toMatchObject({ congestion: 'reno' });
    const bad = await runCli(['send', src, `${node.url}/cli-bad`, '--congestion', 'BBR;']);
    expect(bad.status).toBe(2);
    // A bad flag is E_USAGE naming the flag (issue 35, item 6).
    expect(bad.stderr).toMatch(/E_USAGE: --congestion BBR; is not valid/);
    expect(existsSync(join(node.root, 'cli-bad'))).toBe(false);
    const cc = doctor().find((c) => c.name === 'congestion control')!;
    expect(cc.ok).toBe(bbrUsable);
    expect(cc.detail).toContain(`system default ${systemDefault}; available: ${available.join(' ')}`);
  });
});

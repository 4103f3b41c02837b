// The node's services through the CLI, as separate processes: `serve` with a token file,
// `get`, `ls`, `readv`, `copy` and `stats`, and E_AUTH's exit status.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees } from '../dist/sdk/index.js';
import { CLI, freshDir, jsonLines, randomFile, runCli, smallTree } from './helpers.js';

let work: string;
let tokenFile: string;
const nodes: ChildProcess[] = [];

async function startNode(root: string, extra: string[] = []): Promise<string> {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--root', root, '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--json', '--log-level', 'warn', ...extra],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  nodes.push(child);
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  const ev = JSON.parse(first) as { type: string; host: string; port: number; auth: string };
  expect(ev).toMatchObject({ type: 'listening', auth: 'token' });
  return `${ev.host}:${ev.port}`;
}

beforeAll(() => {
  work = freshDir('cli-node');
  tokenFile = join(work, 'token');
  writeFileSync(tokenFile, 'cli tests share this token 0123456789\n', { mode: 0o600 });
  mkdirSync(join(work, 'src', 'tree'), { recursive: true });
  smallTree(join(work, 'src', 'tree'), 300);
  randomFile(join(work, 'src', 'tree', 'blob'), 3 << 20);
});

afterAll(() => {
  for (const n of nodes) n.kill('SIGKILL');
});

describe('the node through the CLI', () => {
  it('send, ls, get, readv, copy and stats against token-protected nodes', async () => {
    const b = await startNode(join(work, 'b'));
    const a = await startNode(join(work, 'a'), ['--copy-to', b]);
    const auth = ['--token-file', tokenFile];
    expect((await runCli(['send', join(work, 'src', 'tree'), `${a}/in`, '-q', ...auth])).status).toBe(0);

    const listing = await runCli(['ls', `${a}/in/tree`, '--json', ...auth]);
    expect(listing.status, listing.stderr).toBe(0);
    const blob = jsonLines(listing.stdout).find((e) => e.name === 'blob');
    expect(blob).toMatchObject({ kind: 'file', size: 3 << 20 });

    const got = await runCli(['get', `${a}/in/tree`, join(work, 'got'), '--json', ...auth]);
    expect(got.status, got.stderr).toBe(0);
    expect(jsonLines(got.stdout).at(-1)).toMatchObject({ type: 'summary', files: 302 });
    expect(await compareTrees(join(work, 'src', 'tree'), join(work, 'got', 'tree'))).toEqual([]);

    const original = readFileSync(join(work, 'src', 'tree', 'blob'));
    const out = join(work, 'segments.bin');
    const rv = await runCli(['readv', a, 'in/tree/blob:0:100', 'in/tree/blob:1000000:5000', 'in/tree/blob:3145000:1000', '-o', out], {
      LONGHAUL_TOKEN_FILE: tokenFile,
    });
    expect(rv.status, rv.stderr).toBe(0);
    const want = Buffer.concat([original.subarray(0, 100), original.subarray(1_000_000, 1_005_000), original.subarray(3_145_000)]);
    expect(readFileSync(out).equals(want)).toBe(true);
    const missing = await runCli(['readv', a, 'in/tree/nope:0:1', '--json', ...auth]);
    expect(jsonLines(missing.stdout)[0]).toMatchObject({ code: 'E_NOT_FOUND' });

    const cp = await runCli(['copy', `${a}/in/tree`, `${b}/copied`, '-q', ...auth]);
    expect(cp.status, cp.stderr).toBe(0);
    expect(await compareTrees(join(work, 'src', 'tree'), join(work, 'b', 'copied', 'tree'))).toEqual([]);

    const stats = await runCli(['stats', a, '--json', ...auth]);
    expect(stats.status, stats.stderr).toBe(0);
    const s = jsonLines(stats.stdout)[0] as { completed: number; recent: { direction: string }[]; readv: { segments: number } };
    expect(s.completed).toBe(3);
    expect(s.recent.map((t) => t.direction)).toEqual(['in', 'out', 'copy']);
    expect(s.readv.segments).toBe(4);
    const human = await runCli(['stats', a, ...auth]);
    expect(human.stdout).toMatch(/transfers: 0 active, 3 done, 0 failed/);
    expect(human.stdout).toMatch(
      /files named: [\d,]+ linked in \(O_TMPFILE\), [\d,]+ renamed; last push: files in one piece: O_TMPFILE \+ link/,
    );
  }, 120_000);

  it('exits 5 with E_AUTH for a wrong or missing token, and refuses --no-auth off loopback', async () => {
    const a = await startNode(join(work, 'c'));
    writeFileSync(join(work, 'wrong'), 'this is not the right token at all\n');
    const wrong = await runCli(['ls', a, '--token-file', join(work, 'wrong')]);
    expect(wrong.status).toBe(5);
    expect(wrong.stderr).toMatch(/E_AUTH/);
    const none = await runCli(['ls', a], { LONGHAUL_TOKEN: '', LONGHAUL_TOKEN_FILE: '' });
    expect(none.status).toBe(5);
    const open = await runCli(['serve', '--root', join(work, 'd'), '--listen', '0.0.0.0:0', '--no-auth']);
    expect(open.status).toBe(2);
    expect(open.stderr).toMatch(/E_USAGE.*without authentication/);
  });
});

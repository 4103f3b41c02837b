// Filters and the client's own rate (issue 32): `send --exclude/--include/--exclude-from` leave
// out what rsync with the same flags leaves out (rsync is the oracle), the summary counts it,
// and `--rate` holds a send to its limit and says so.
import { spawnSync } from 'node:child_process';
import { closeSync, linkSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, send, serve, type StorageNode } from '../dist/sdk/index.js';
import { freshDir, randomFile, runCli } from './helpers.js';

let work: string;
let src: string;
let node: StorageNode;

beforeAll(async () => {
  work = freshDir('filters');
  src = join(work, 'src');
  for (const d of ['cache', 'sub/cache', 'sub/deep', 'logs']) mkdirSync(join(src, d), { recursive: true });
  const files = [
    'a.c',
    'a.tmp',
    'keep.tmp',
    'cache/x',
    'sub/cache/y',
    'sub/b.log',
    'sub/deep/c.c',
    'sub/deep/d.tmp',
    'logs/today.log',
    'logs/README',
  ];
  files.forEach((f, i) => writeFileSync(join(src, f), `${f} ${'x'.repeat(i * 100)}`));
  node = await serve({ root: join(work, 'root'), auth: false });
});

afterAll(async () => {
  await node?.close();
});

describe('issue 32: send filters match rsync with the same flags', () => {
  it('--include ahead of --exclude keeps its match, an anchored directory is not sent, --exclude-from adds rules', async () => {
    const rulesFile = join(work, 'rules');
    writeFileSync(rulesFile, '# build droppings\n*.log\n\n');
    const flags = ['--include', 'keep.tmp', '--exclude', '*.tmp', '--exclude', '/cache/', '--exclude-from', rulesFile];
    const r = await runCli(['send', src, `${node.url}/f`, ...flags]);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { excluded: number; files: number };
    // a.tmp, sub/deep/d.tmp, cache (once), sub/b.log, logs/today.log.
    expect(summary.excluded).toBe(5);
    expect(r.stderr).toMatch(/^excluded: 5 entries left out by the filters/m);

    const oracle = join(work, 'rsync');
    const rs = spawnSync('rsync', ['-a', ...flags, `${src}/`, `${oracle}/`], { encoding: 'utf8' });
    expect(rs.status, rs.stderr).toBe(0);
    // rsync itself, asked what it would change to make ours equal the source under the same
    // rules, finds nothing (bytes, modes, times, links; --checksum reads every file).
    const itemize = spawnSync(
      'rsync',
      ['-a', '--checksum', '--dry-run', '--itemize-changes', ...flags, `${src}/`, `${join(work, 'root', 'f', 'src')}/`],
      {
        encoding: 'utf8',
      },
    );
    expect(itemize.status, itemize.stderr).toBe(0);
    expect(itemize.stdout).toBe('');
    // rsync's own copy sets some directories' mtimes late here: the rest must be equal.
    expect(await compareTrees(oracle, join(work, 'root', 'f', 'src'), { dirMtimes: false })).toEqual([]);
    // What rsync kept and we kept, named: the unanchored cache and the kept .tmp.
    expect(await compareTrees(join(src, 'sub', 'cache'), join(work, 'root', 'f', 'src', 'sub', 'cache'))).toEqual([]);
    expect(summary.files).toBe(5);
  });

  it('bad rules are E_USAGE: an unreadable --exclude-from, an SDK rule without its sign', async () => {
    const r = await runCli(['send', src, `${node.url}/bad`, '--exclude-from', join(work, 'no-such-file')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^longhaul: E_USAGE: --exclude-from .*no-such-file: ENOENT/m);
    await expect(send(src, `${node.url}/bad`, { filters: ['*.tmp'] })).rejects.toMatchObject({ code: 'E_USAGE' });
  });
});

describe('issue 32: send SRC... DEST', () => {
  it('sends each source in turn into DEST, a summary each; --report wants one source', async () => {
    const one = join(work, 'one.txt');
    writeFileSync(one, 'one');
    const r = await runCli(['send', one, src, `${node.url}/multi`]);
    expect(r.status, r.stderr).toBe(0);
    const summaries = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; files: number })
      .filter((l) => l.type === 'summary');
    expect(summaries.map((x) => x.files)).toEqual([1, 10]);
    expect(await compareTrees(src, join(work, 'root', 'multi', 'src'))).toEqual([]);
    expect(await compareTrees(one, join(work, 'root', 'multi', 'one.txt'))).toEqual([]);
    const both = await runCli(['send', one, src, `${node.url}/multi2`, '--report', join(work, 'r.html')]);
    expect(both.status).toBe(2);
    expect(both.stderr).toMatch(/^longhaul: E_USAGE: --report and --timeline describe one transfer/m);
  });
});

describe('issue 32: what is not kept is named', () => {
  it('hard links and sparse files are kept, so not named (test/metadata.test.ts has the rest)', async () => {
    const tree = join(work, 'links');
    mkdirSync(tree);
    writeFileSync(join(tree, 'a'), 'one file, two names');
    linkSync(join(tree, 'a'), join(tree, 'b'));
    // 8 MiB with one byte of data at its end: a hole of 8 MiB.
    const fd = openSync(join(tree, 'sparse'), 'w');
    writeSync(fd, 'x', 8 << 20);
    closeSync(fd);
    const r = await runCli(['send', tree, `${node.url}/links`]);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { hardLinks: number; sparseFiles: number };
    expect(summary).toMatchObject({ hardLinks: 0, sparseFiles: 0 });
    expect(r.stderr).not.toMatch(/not kept/);
    // What arrived is right byte for byte, as one file with two names and a sparse one.
    expect(await compareTrees(tree, join(work, 'root', 'links', 'links'))).toEqual([]);
  });
});

describe('issue 32: the client-side --rate', () => {
  it('holds a send to its rate (never above it) and names it as the limit', async () => {
    const big = join(work, 'big');
    randomFile(big, 12 << 20);
    const rate = 6 << 20;
    const s = await send(big, `${node.url}/rated`, { rate: '6M' });
    // The bucket starts with a tenth of a second's worth: below that, the send is too fast.
    expect(s.seconds).toBeGreaterThan((s.bytes - rate / 10) / rate);
    expect(s.verdict.limit).toBe('rate limit');
    expect(s.verdict.evidence).toMatch(/this send's own --rate is 6\.3 MB\/s/);
    // The config key (LONGHAUL_RATE) reaches send too.
    const r = await runCli(['send', big, `${node.url}/rated-env`, '-v'], { LONGHAUL_RATE: '6M' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/limited by: rate limit \(this send's own --rate/);
  });
});

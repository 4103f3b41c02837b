// The tree comparison the other tests rely on must itself catch every kind of difference.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, openSync, symlinkSync, unlinkSync, utimesSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { compareTrees } from '../dist/sdk/index.js';
import { freshDir } from './helpers.js';

function pair(): { a: string; b: string } {
  const w = freshDir('verify');
  const a = join(w, 'a');
  mkdirSync(join(a, 'd'), { recursive: true });
  writeFileSync(join(a, 'd', 'f'), 'hello world');
  symlinkSync('d/f', join(a, 'l'));
  const b = join(w, 'b');
  // GNU cp -a keeps mtimes to the nanosecond (fs.cpSync rounds them to microseconds).
  execFileSync('cp', ['-a', a, b]);
  return { a, b };
}

describe('compareTrees', () => {
  it('finds no difference in a faithful copy', async () => {
    const { a, b } = pair();
    expect(await compareTrees(a, b)).toEqual([]);
  });

  it('catches a flipped byte, a mode, an mtime, a link target, a missing and an extra entry', async () => {
    const cases: [string, (b: string) => void][] = [
      ['content', (b) => writeFileSync(join(b, 'd', 'f'), 'hello worle')],
      ['mode', (b) => chmodSync(join(b, 'd', 'f'), 0o600)],
      ['mtime', (b) => utimesSync(join(b, 'd', 'f'), 1, 1)],
      [
        'target',
        (b) => {
          unlinkSync(join(b, 'l'));
          symlinkSync('d/g', join(b, 'l'));
        },
      ],
      ['missing', (b) => unlinkSync(join(b, 'l'))],
      ['extra', (b) => writeFileSync(join(b, 'new'), '')],
      ['size', (b) => writeFileSync(join(b, 'd', 'f'), 'hello')],
    ];
    for (const [what, change] of cases) {
      const { a, b } = pair();
      change(b);
      const diffs = await compareTrees(a, b, { dirMtimes: false });
      expect(
        diffs.map((d) => d.what),
        what,
      ).toContain(what);
    }
  });

  it('compares many files at once and lists the differences in path order, past the first read of a large file', async () => {
    const w = freshDir('verify-many');
    const a = join(w, 'a');
    for (let d = 0; d < 12; d++) {
      mkdirSync(join(a, `d${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 25; f++) writeFileSync(join(a, `d${d}`, f % 2 ? 'sub' : '', `f${f}`), `file ${d}/${f}\n`.repeat(f));
    }
    // Files of exactly one and two of the comparison's 256 KiB reads, and one between.
    for (const [name, size] of [
      ['one', 256 << 10],
      ['two', 512 << 10],
      ['between', 300_000],
    ] as const) {
      writeFileSync(join(a, 'd3', name), Buffer.alloc(size, 7));
    }
    const b = join(w, 'b');
    execFileSync('cp', ['-a', a, b]);
    expect(await compareTrees(a, b)).toEqual([]);
    // The last byte of each large file, a missing file, an extra one; mtimes kept.
    for (const [name, size] of [
      ['one', 256 << 10],
      ['two', 512 << 10],
      ['between', 300_000],
    ] as const) {
      const fd = openSync(join(b, 'd3', name), 'r+');
      writeSync(fd, Buffer.from([8]), 0, 1, size - 1);
      closeSync(fd);
      execFileSync('touch', ['-r', join(a, 'd3', name), join(b, 'd3', name)]);
    }
    unlinkSync(join(b, 'd9', 'sub', 'f7'));
    writeFileSync(join(b, 'd0', 'zz'), '');
    execFileSync('touch', ['-r', join(a, 'd0'), join(b, 'd0')]);
    execFileSync('touch', ['-r', join(a, 'd9', 'sub'), join(b, 'd9', 'sub')]);
    expect(await compareTrees(a, b)).toEqual([
      { path: 'd3/between', what: 'content' },
      { path: 'd3/one', what: 'content' },
      { path: 'd3/two', what: 'content' },
      { path: 'd9/sub/f7', what: 'missing' },
      { path: 'd0/zz', what: 'extra' },
    ]);
  });

  it('a missing tree is E_NOT_FOUND', async () => {
    const { a } = pair();
    await expect(compareTrees(a, join(a, 'no such dir'))).rejects.toMatchObject({ name: 'LonghaulError', code: 'E_NOT_FOUND' });
  });
});

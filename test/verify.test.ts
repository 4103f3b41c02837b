// The tree comparison the other tests rely on must itself catch every kind of difference.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { compareTrees } from '../dist/index.js';
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
});

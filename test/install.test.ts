// A clean clone installs with `npm ci` (README, .ci/run): that needs package-lock.json to agree
// with package.json, optional per-platform packages of every platform included, or npm ci
// refuses and only `npm install` works (rewriting the lockfile).
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { freshDir } from './helpers.js';

const ROOT = join(import.meta.dirname, '..');

describe('issue 35: clean installs', () => {
  it('npm ci accepts package-lock.json as it is (dry run, offline)', () => {
    // A copy of the two files, not the checkout: npm ci starts by removing node_modules, and a
    // dry run in a directory without one cannot touch anything the tests need.
    const dir = freshDir('npm-ci');
    for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(ROOT, f), join(dir, f));
    // An empty cache of its own: the check reads only the two files, never the network.
    mkdirSync(join(dir, 'cache'));
    const r = spawnSync(
      'npm',
      ['ci', '--dry-run', '--ignore-scripts', '--offline', '--no-audit', '--no-fund', '--cache', join(dir, 'cache')],
      {
        cwd: dir,
        encoding: 'utf8',
        env: { ...process.env, npm_config_loglevel: 'error' },
      },
    );
    expect(r.stderr).not.toMatch(/in sync|Missing: /);
    expect(r.status, r.stderr).toBe(0);
  }, 60_000);
});

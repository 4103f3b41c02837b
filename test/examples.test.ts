// Every program in examples/ runs as a user would run it (`node examples/NAME.mjs`, importing
// 'longhaul' by name) and checks its own result; the example config file is valid.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const EXAMPLES = join(ROOT, 'examples');

/** What each example prints when it worked (it throws, and exits non-zero, when it did not). */
const EXPECTED: Record<string, RegExp> = {
  'send-tree.mjs': /^sent 201 files \(\d+ bytes\) at \d+ MiB\/s; verified identical$/m,
  'readv.mjs': /^readv: 100 segments, 409600 bytes in one request; verified; a missing file gave E_NOT_FOUND$/m,
  'pull-and-copy.mjs': /^pulled 50 files, copied 50 files node to node; the mirror lists 50 entries; both verified$/m,
};

describe('examples/', () => {
  it('has an expectation for every example', () => {
    expect(
      readdirSync(EXAMPLES)
        .filter((f) => f.endsWith('.mjs'))
        .sort(),
    ).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [file, expected] of Object.entries(EXPECTED)) {
    it(`node examples/${file}`, () => {
      const r = spawnSync(process.execPath, [join(EXAMPLES, file)], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(expected);
    });
  }

  it('examples/longhaul.config.json is a valid config with every value read from the file', () => {
    const r = spawnSync(
      process.execPath,
      [join(ROOT, 'dist', 'cli.js'), 'config', '--config', join(EXAMPLES, 'longhaul.config.json'), '--json'],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stderr).toBe(0);
    const { options } = JSON.parse(r.stdout) as { options: Record<string, { value: unknown; source: string }> };
    expect(options.blockSize).toEqual({ value: 8 << 20, source: join(EXAMPLES, 'longhaul.config.json') });
    expect(options.peerRates!.value).toEqual({ '10.0.0.7': 200 << 20 });
  });
});

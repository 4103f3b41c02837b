// 64 senders at once against one node process (bench/load.mjs, small trees in CI; the bench's
// full size is in bench/RESULTS.md): every send completes, every tree arrives identical, and
// the node's peak RSS stays under its pool + 128 MiB.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { freshDir } from './helpers.js';

describe('load', () => {
  it('64 concurrent senders of small trees all complete and verify; node RSS stays under pool + 128 MiB', () => {
    const out = join(freshDir('load'), 'load.json');
    const script = join(import.meta.dirname, '..', 'bench', 'load.mjs');
    let status = 0;
    try {
      execFileSync(process.execPath, [script, '--senders', '64', '--files', '40', '--out', out], { stdio: 'pipe' });
    } catch (e) {
      status = (e as { status: number }).status;
    }
    const r = JSON.parse(readFileSync(out, 'utf8')) as Record<string, number | string[]>;
    expect(r.failed).toEqual([]);
    expect(r.completed).toBe(64);
    expect(r.verified).toBe(64);
    expect(r.nodePeakRssMiB as number).toBeLessThanOrEqual(r.boundMiB as number);
    expect(r.boundMiB).toBe(64 + 128);
    expect(status).toBe(0);
  });
});

// 64 senders at once against one node process (bench/load.mjs, small trees in CI; the bench's
// full size is in bench/RESULTS.md): every send completes, every tree arrives identical, and
// the node's peak RSS stays under its pool + 128 MiB.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

import { freshDir } from './helpers.js';

describe('load', () => {
  it('64 concurrent senders of small trees all complete and verify; node RSS stays under pool + 128 MiB', async () => {
    const out = join(freshDir('load'), 'load.json');
    const script = join(import.meta.dirname, '..', 'bench', 'load.mjs');
    // Asynchronous, so the worker's event loop keeps answering vitest while the bench runs.
    let status: number | string = 0;
    try {
      await promisify(execFile)(process.execPath, [script, '--senders', '64', '--files', '40', '--out', out], {
        maxBuffer: 64 << 20,
      });
    } catch (e) {
      status = (e as { code: number | string }).code;
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

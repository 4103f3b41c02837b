// The pure parts of bench/scale.mjs (issue 33): the tree's rounding, /usr/bin/time's peak, the
// summary line, a row's verdicts against pool + 64 MiB and the table. Not timed.
import { describe, expect, it } from 'vitest';

import { maxRssMiB, roundFiles, row, summaryOf, table } from '../bench/scale.mjs';

const base = { idleNodeMiB: 119, oneFileSenderMiB: 49 };

describe('bench scale, its pure parts (issue 33)', () => {
  it('rounds a file count up to whole directories of 200', () => {
    expect(roundFiles(20000)).toBe(20000);
    expect(roundFiles(1)).toBe(200);
    expect(roundFiles(2_000_001)).toBe(2_000_200);
  });

  it('reads the peak RSS of /usr/bin/time -v and the summary of send --json', () => {
    expect(maxRssMiB('\tCommand being timed: "node"\n\tMaximum resident set size (kbytes): 131072\n')).toBe(128);
    expect(maxRssMiB('no report')).toBeNaN();
    expect(summaryOf('{"type":"progress"}\n{"type":"summary","files":3}\n')).toMatchObject({ files: 3 });
    expect(() => summaryOf('{"type":"progress"}\n')).toThrow(/expected a summary/);
  });

  it('judges each end against pool + 64 MiB and the first byte against 1 s', () => {
    const r = row(
      { files: 2_000_000, scanSeconds: 9, firstByteSeconds: 12.5, seconds: 100, nodeMiB: 470, senderMiB: 120, poolMiB: 64 },
      base,
    );
    expect(r).toMatchObject({ boundMiB: 128, nodeWithin: false, senderWithin: true, firstByteUnder1s: false, filesPerSec: 20000 });
    expect(r.nodeBytesPerFile).toBe(Math.round((351 * 2 ** 20) / 2_000_000));
    const none = row(
      { files: 200, scanSeconds: 0, firstByteSeconds: undefined, seconds: 1, nodeMiB: 120, senderMiB: 50, poolMiB: 64 },
      base,
    );
    expect(none).toMatchObject({ firstByteSeconds: null, firstByteUnder1s: false });
    const t = table([r, none], base);
    expect(t).toMatch(/^\| files \| scan s \| first byte s/);
    expect(t).toContain('| 2,000,000 | 9.00 | 12.50 | 100.00 | 20,000 | 470 (+351) | 120 (+71) | 128 | **no** | yes | **no** |');
    expect(t).toContain('| 200 | 0.00 | n/a | 1.00 | 200 |');
    expect(t).toContain('idle node 119 MiB, sender of one small file 49 MiB');
  });
});

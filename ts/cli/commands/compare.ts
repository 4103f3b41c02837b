// `longhaul compare`: two local trees (or files) compared as a transfer should leave them.
// fs.promises, not node:fs/promises: that module is loaded when used, not at every start-up.
import { promises as fs } from 'node:fs';

import { compareTrees, LonghaulError } from '../../sdk/index.js';
import * as fmt from '../format.js';
import { fail } from '../output.js';
import { program } from '../program.js';

export function register(): void {
  program
    .command('compare')
    .description(
      'compare two local trees (or two files) as a transfer should leave them: entries, kinds, sizes, bytes, modes, mtimes, link targets (exit 1 when they differ)',
    )
    .argument('<expected>', 'the source: a directory, or one file')
    .argument('<actual>', 'the copy')
    .option('--no-dir-mtimes', 'leave directory mtimes out')
    .option('--json', 'one JSON object per difference, then a summary object')
    .option('-q, --quiet', 'print nothing (as cmp -s): the exit status says whether they differ')
    .action(async (expected: string, actual: string, o: { dirMtimes: boolean; json?: boolean; quiet?: boolean }) => {
      const json = Boolean(o.json);
      try {
        // The roots may be symlinks (as with diff -r); entries below are not followed.
        for (const root of [expected, actual]) {
          if (!(await fs.stat(root).catch(() => undefined))) throw new LonghaulError('E_NOT_FOUND', `not found: ${JSON.stringify(root)}`);
        }
        // As diff and cmp: 0 the same, 1 different; errors keep their own statuses (docs/ERRORS.md).
        const diffs = await compareTrees(expected, actual, { dirMtimes: o.dirMtimes });
        process.exitCode = diffs.length === 0 ? 0 : 1;
        if (o.quiet && !json) return;
        for (const d of diffs) {
          if (json) process.stdout.write(`${JSON.stringify({ type: 'difference', ...d })}\n`);
          else
            process.stdout.write(`${d.what} ${d.path}${d.expected === undefined ? '' : `: expected ${d.expected}, found ${d.actual}`}\n`);
        }
        if (json)
          process.stdout.write(`${JSON.stringify({ type: 'summary', identical: diffs.length === 0, differences: diffs.length })}\n`);
        else
          process.stderr.write(
            diffs.length === 0
              ? 'identical (entries, bytes, modes, mtimes, link targets)\n'
              : `${fmt.plural(diffs.length, 'difference')}\n`,
          );
      } catch (err) {
        fail(err, json);
      }
    });
}

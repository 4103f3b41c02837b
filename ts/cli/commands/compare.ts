// `longhaul compare`: two local trees (or files) compared as a transfer should leave them; or a
// local tree and one on a node (`HOST:PORT/PATH`), which the node lists and hashes itself.
// fs.promises, not node:fs/promises: that module is loaded when used, not at every start-up.
import { promises as fs } from 'node:fs';

import { compareTrees, compareWithNode, LonghaulError, type TreeDifference } from '../../sdk/index.js';
import * as fmt from '../format.js';
import { credentials, settings, withConfig } from '../options.js';
import { fail } from '../output.js';
import { program } from '../program.js';

/** `HOST:PORT[/PATH]` that names no local file: the tree on a node. */
async function onNode(actual: string): Promise<boolean> {
  if (!/^(\[[^\]]+\]|[^/:[\]]+):\d{1,5}(\/.*)?$/.test(actual)) return false;
  return !(await fs.stat(actual).catch(() => undefined));
}

export function register(): void {
  // The node's credentials are those `ls` takes (token, TLS, config file).
  withConfig(
    program
      .command('compare')
      .description(
        'compare two trees (or two files) as a transfer should leave them: entries, kinds, sizes, bytes, modes, mtimes, link targets (exit 1 when they differ); ACTUAL may be HOST:PORT/PATH on a node, which hashes its files itself (BLAKE3)',
      )
      .argument('<expected>', 'the source: a directory, or one file')
      .argument('<actual>', 'the copy: a local path, or HOST:PORT/PATH on a node')
      .option('--no-dir-mtimes', 'leave directory mtimes out')
      .option('--json', 'one JSON object per difference, then a summary object')
      .option('-q, --quiet', 'print nothing (as cmp -s): the exit status says whether they differ'),
    'ls',
  ).action(
    async (expected: string, actual: string, o: Record<string, unknown> & { dirMtimes: boolean; json?: boolean; quiet?: boolean }) => {
      const json = Boolean(o.json);
      try {
        const remote = await onNode(actual);
        // The roots may be symlinks (as with diff -r); entries below are not followed.
        for (const root of remote ? [expected] : [expected, actual]) {
          if (!(await fs.stat(root).catch(() => undefined))) throw new LonghaulError('E_NOT_FOUND', `not found: ${JSON.stringify(root)}`);
        }
        // As diff and cmp: 0 the same, 1 different; errors keep their own statuses (docs/ERRORS.md).
        const diffs: TreeDifference[] = remote
          ? await compareWithNode(expected, actual, { dirMtimes: o.dirMtimes, ...credentials(settings(o, 'ls').values) })
          : await compareTrees(expected, actual, { dirMtimes: o.dirMtimes });
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
    },
  );
}

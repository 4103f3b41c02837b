// `longhaul get`: pull a file or a tree from a node.
import { get } from '../../sdk/index.js';
import { credentials, withConfig } from '../options.js';
import { type OutputFlags } from '../output.js';
import { program } from '../program.js';
import { receiveAction } from '../receive.js';

export function register(): void {
  withConfig(
    program
      .command('get')
      .description('pull a file or a directory tree from a node (the node sends)')
      .argument('<source>', 'HOST[:PORT]/PATH on the node; a directory P arrives as DEST/P')
      .argument('<dest>', 'local directory (created if missing)')
      .option('--json', 'print progress and the summary as JSON lines')
      .option('-q, --quiet', 'print nothing on success (errors still go to stderr)')
      .option('-v, --verbose', "also print the block count and the receiving side's time")
      .option(
        '-a, --archive',
        'what a mirror keeps, as rsync -aHSX: the tree, modes, mtimes, symlinks, hard links and sparse files (always kept), and also --owner, --group and --xattrs; what cannot be kept is named',
      ),
    'get',
  ).action((source: string, dest: string, o: Record<string, unknown> & OutputFlags) =>
    receiveAction('get', o, (c, reporter, signal) =>
      get(source, dest, {
        streams: c.streams === 'auto' ? undefined : c.streams,
        blockSize: c.blockSize,
        ...credentials(c),
        verify: c.verify,
        resume: c.resume,
        keepSetid: c.keepSetid,
        rate: c.rate,
        checksum: c.checksum,
        owner: c.owner || Boolean(o.archive),
        group: c.group || Boolean(o.archive),
        xattrs: c.xattrs || Boolean(o.archive),
        signal,
        onProgress: (p) => reporter.progress(p),
        progressIntervalMs: !o.json && !o.quiet && process.stderr.isTTY ? 100 : 500,
      }),
    ),
  );
}

// `longhaul copy`: have one node push to another; the data does not pass through here.
import { copy } from '../../sdk/index.js';
import { credentials, withConfig } from '../options.js';
import { type OutputFlags } from '../output.js';
import { program } from '../program.js';
import { receiveAction } from '../receive.js';

export function register(): void {
  withConfig(
    program
      .command('copy')
      .description('third-party copy: have one node push to another; the data does not pass through here')
      .argument('<from>', 'HOST[:PORT]/SRC on the node that has the data')
      .argument('<to>', 'HOST[:PORT]/DEST of the receiving node, as the first node reaches it')
      .option('--json', 'print progress and the summary as JSON lines')
      .option('-q, --quiet', 'print nothing on success (errors still go to stderr)')
      .option('-v, --verbose', "also print the block count and the receiving side's time"),
    'copy',
  ).action((from: string, to: string, o: Record<string, unknown> & OutputFlags) =>
    receiveAction('copy', o, (c, reporter, signal) =>
      copy(from, to, {
        streams: c.streams === 'auto' ? undefined : c.streams,
        blockSize: c.blockSize,
        ...credentials(c),
        verify: c.verify,
        signal,
        onProgress: (p) => reporter.progress(p),
      }),
    ),
  );
}

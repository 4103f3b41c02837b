// The commander program every command adds itself to, with the options all of them share.
import { readFileSync } from 'node:fs';

import { Command } from 'commander';

// Read relative to the bundle, dist/cli.js (scripts/bundle-cli.mjs), which is what runs.
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

export const program = new Command()
  .name('longhaul')
  .description('Move files and trees between machines as fast as the disk, the network and the cores allow.')
  .version(pkg.version)
  .option('--debug', 'on failure, print the chain of causes with stack traces')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

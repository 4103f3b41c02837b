// The commander program every command adds itself to, with the options all of them share.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { Command } from 'commander';

// Read relative to the bundle, dist/longhaul.cjs (scripts/bundle-cli.mjs), which is what runs.
// A path, not a URL: building a file: URL costs ~1 ms of every command's start-up.
const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string };

export const program = new Command()
  .name('longhaul')
  .description('Move files and trees between machines as fast as the disk, the network and the cores allow.')
  .version(pkg.version)
  .option('--debug', 'on failure, print the chain of causes with stack traces')
  .exitOverride()
  .configureOutput({
    writeErr: (s) => process.stderr.write(s),
    // commander's own errors (an unknown option or command, a missing argument) in the one-line
    // form of every other error (docs/ERRORS.md); main.ts exits 2.
    outputError: (s, write) => write(`longhaul: E_USAGE: ${usageLine(s)} (fix: see \`longhaul ${commandOf(process.argv)}--help\`)\n`),
  });

/** commander's message ("error: unknown option '--x'\n(Did you mean --y?)") as one line. */
function usageLine(s: string): string {
  return s
    .replace(/^error: /, '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ');
}

/** The command named on the command line, with a space after it, or '' when none is. */
function commandOf(argv: string[]): string {
  const name = argv.slice(2).find((a) => !a.startsWith('-'));
  return name && program.commands.some((c) => c.name() === name) ? `${name} ` : '';
}

// Every command but a lone `--version` (main.ts): registers the commands, parses, and ends a
// failed command with its one-line error. Only the command named is registered (its options
// build on the config schemas); `--help`, `help` without a command and an unknown command
// register all of them (the list, or commander's "did you mean").
import { CommanderError } from 'commander';

import * as bench from './commands/bench.js';
import * as compare from './commands/compare.js';
import * as config from './commands/config.js';
import * as copy from './commands/copy.js';
import * as demo from './commands/demo.js';
import * as doctor from './commands/doctor.js';
import * as get from './commands/get.js';
import * as ls from './commands/ls.js';
import * as readv from './commands/readv.js';
import * as send from './commands/send.js';
import * as serve from './commands/serve.js';
import * as stats from './commands/stats.js';
import { fail } from './output.js';
import { program } from './program.js';

// In this order in `longhaul --help`.
const COMMANDS: Record<string, { register(): void }> = { serve, send, get, copy, ls, readv, stats, bench, compare, doctor, demo, config };

/** The commands to register: the one named (`longhaul --debug send …`, `longhaul help send`), else all. */
function commandsFor(args: string[]): string[] {
  // The program's own options take no value, so the first word that is not an option names the command.
  const words = args.filter((a) => !a.startsWith('-'));
  const named = words[0] === 'help' ? words[1] : words[0];
  if (named !== undefined && Object.hasOwn(COMMANDS, named)) return [named];
  return Object.keys(COMMANDS);
}

export async function run(args: string[]): Promise<void> {
  try {
    for (const name of commandsFor(args)) COMMANDS[name]!.register();
    await program.parseAsync(['node', 'longhaul', ...args]);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    fail(err, false);
  }
}

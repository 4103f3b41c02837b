#!/usr/bin/env node
// The longhaul command line: a thin layer over the SDK. Exit statuses are documented in
// docs/ERRORS.md (0 success, 2 usage, 3 network, 4 source, 5 refused, 6 destination I/O,
// 7 integrity, 130 cancelled, 1 anything else; `compare`: 1 when the trees differ).
//
// Start-up time is paid by every script that moves a small dataset, so only the command that
// runs is loaded: `--version` loads commander alone, `send` its own module (the SDK, the addon,
// the config schemas) and not serve's or the report's. `--help`, `help` without a command and an
// unknown command load all of them (the list, or commander's "did you mean").
import { readFileSync } from 'node:fs';

import { dropOutputWhenReaderGone } from './stdio.js';

dropOutputWhenReaderGone();
// `longhaul --version` alone answers before commander loads (a third of its start-up), as commander would.
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  // Read relative to the bundle, dist/cli.js (scripts/bundle-cli.mjs), which is what runs.
  process.stdout.write(
    `${(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version}\n`,
  );
  process.exit(0);
}
const { CommanderError } = await import('commander');
const { program } = await import('./program.js');

// In this order in `longhaul --help`.
const COMMANDS: Record<string, () => Promise<{ register(): void }>> = {
  serve: () => import('./commands/serve.js'),
  send: () => import('./commands/send.js'),
  get: () => import('./commands/get.js'),
  copy: () => import('./commands/copy.js'),
  ls: () => import('./commands/ls.js'),
  readv: () => import('./commands/readv.js'),
  stats: () => import('./commands/stats.js'),
  compare: () => import('./commands/compare.js'),
  doctor: () => import('./commands/doctor.js'),
  demo: () => import('./commands/demo.js'),
  config: () => import('./commands/config.js'),
};

/** The commands to register: the one named (`longhaul --debug send …`, `longhaul help send`), none for `--version`, else all. */
function commandsFor(argv: string[]): string[] {
  // The program's own options take no value, so the first word that is not an option names the command.
  const words = argv.filter((a) => !a.startsWith('-'));
  const named = words[0] === 'help' ? words[1] : words[0];
  if (named !== undefined && Object.hasOwn(COMMANDS, named)) return [named];
  if (named === undefined && argv.some((a) => a === '-V' || a === '--version') && !argv.some((a) => a === '-h' || a === '--help'))
    return [];
  return Object.keys(COMMANDS);
}

try {
  for (const m of await Promise.all(commandsFor(args).map((name) => COMMANDS[name]!()))) m.register();
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  const { fail } = await import('./output.js');
  fail(err, false);
}

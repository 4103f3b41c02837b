#!/usr/bin/env node
// The longhaul command line: a thin layer over the SDK. Exit statuses are documented in
// docs/ERRORS.md (0 success, 2 usage, 3 network, 4 source, 5 refused, 6 destination I/O,
// 7 integrity, 130 cancelled, 1 anything else; `compare`: 1 when the trees differ).
import { CommanderError } from 'commander';

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
for (const command of [serve, send, get, copy, ls, readv, stats, compare, doctor, demo, config]) command.register();

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  fail(err, false);
}

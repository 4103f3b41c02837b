#!/usr/bin/env node
// The longhaul command line: a thin layer over the SDK. Exit statuses are documented in
// docs/ERRORS.md (0 success, 2 usage, 3 network, 4 source, 5 refused, 6 destination I/O,
// 7 integrity, 130 cancelled, 1 anything else; `compare`: 1 when the trees differ).
//
// Start-up time is paid by every script that moves a small dataset (bench/startup.mjs). This
// entry loads nothing but what `--version` needs; every other command loads run.js, bundled
// with commander, the SDK and the commands into one file (scripts/bundle-cli.mjs), since each
// ES module costs a resolve, a read and a compile of its own.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { dropOutputWhenReaderGone } from './stdio.js';

dropOutputWhenReaderGone();
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  // As commander prints it. Read relative to the bundle, dist/longhaul.cjs, which is what runs.
  process.stdout.write(
    `${(JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string }).version}\n`,
  );
  process.exit(0);
}
// Not a top-level await: the bundle is CommonJS (scripts/bundle-cli.mjs).
void import('./run.js').then(({ run }) => run(args));

// Bundles the CLI (dist/cli/main.js and the modules it imports, the SDK's, commander, zod and
// cli-progress included) into dist/cli.js (the package's `bin`, the entry: enough for
// `--version`) and a few chunks beside it (cli-chunk-*.js: the commands, loaded by the entry;
// the report, the demo's sample tree and the bar, loaded when used), so that `longhaul` starts
// without resolving and loading some fifty ES modules (bench/RESULTS.md, `npm run bench --
// startup`). The SDK (dist/sdk/index.js) stays as tsc wrote it. Run by `npm run build:ts` after
// tsc.
import { rmSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import { build } from 'rolldown';

const dist = join(import.meta.dirname, '..', 'dist');
for (const f of readdirSync(dist).filter((f) => /^cli-chunk-.*\.js(\.map)?$/.test(f))) rmSync(join(dist, f));
await build({
  input: join(dist, 'cli', 'main.js'),
  platform: 'node',
  // Loaded only by `serve` (pino: its logs) and `serve --metrics` (prom-client), from node_modules.
  external: ['prom-client', 'pino'],
  plugins: [
    {
      // commander requires node:child_process at load for executable subcommands, which longhaul
      // has none of: ~3 ms of every command's start-up. Required when first used instead. (If
      // commander changes that line, this matches nothing and the bundle is as before.)
      name: 'commander-lazy-child-process',
      transform(code, id) {
        if (!/node_modules[\\/]commander[\\/]lib[\\/]command\.js$/.test(id)) return null;
        const eager = "const childProcess = require('node:child_process');";
        if (!code.includes(eager)) return null;
        // Same line, same place: the source map stays as it was (map: null).
        const lazy = "const childProcess = { spawn: (...a) => require('node:child_process').spawn(...a) };";
        return { code: code.replace(eager, lazy), map: null };
      },
    },
    {
      // The SDK's native.js stays a module of its own, dist/sdk/native.js: it loads the addon
      // relative to itself (../../native), which the bundle, one level up, is not.
      name: 'addon-loader-external',
      resolveId(source, importer) {
        if (importer && resolve(dirname(importer), source) === join(dist, 'sdk', 'native.js'))
          return { id: './sdk/native.js', external: true };
        return null;
      },
    },
  ],
  logLevel: 'warn',
  output: {
    dir: dist,
    format: 'esm',
    entryFileNames: 'cli.js',
    // The bundler's runtime helpers, and the chunks below.
    chunkFileNames: 'cli-chunk-[name].js',
    codeSplitting: {
      groups: [
        {
          // What every command but a lone `--version` loads (dist/cli/run.js and what it imports:
          // commander, zod, the SDK, the commands) as one file rather than several, since each ES
          // module costs a resolve, a read and a compile. The entry (main, stdio) stays out, so
          // that `--version` loads nothing else; the HTML report, the demo's sample tree (and
          // node:crypto with it) and cli-progress (a bar, on a terminal) stay in chunks of their
          // own, loaded only when used.
          name: 'run',
          test: (id) =>
            /node_modules[\\/](commander|zod)[\\/]|dist[\\/](sdk|cli)[\\/]/.test(id) &&
            !/dist[\\/]cli[\\/](main|stdio|report|sample-tree)\.js$/.test(id),
        },
      ],
    },
    sourcemap: true,
  },
});

// Bundles the CLI (dist/cli/main.js and the modules it imports, the SDK's, commander, zod and
// cli-progress included) into one file, dist/cli.js (the package's `bin`), so that `longhaul`
// starts without resolving and loading some fifty ES modules: ~0.1 s less per command on these
// machines (bench/RESULTS.md). The SDK (dist/sdk/index.js) stays as tsc wrote it. Run by
// `npm run build:ts` after tsc.
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
    // The bundler's runtime helpers.
    chunkFileNames: 'cli-chunk-[name].js',
    sourcemap: true,
  },
});

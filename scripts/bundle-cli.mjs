// Bundles the CLI (dist/cli.js and the modules it imports, commander, zod and cli-progress
// included) into one file in place, so that `longhaul` starts without resolving and loading
// some fifty ES modules: ~0.1 s less per command on these machines (bench/RESULTS.md). The SDK
// (dist/index.js) stays as tsc wrote it. Run by `npm run build:ts` after tsc.
import { rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { build } from 'rolldown';

const dist = join(import.meta.dirname, '..', 'dist');
for (const f of readdirSync(dist).filter((f) => /^cli-chunk-.*\.js(\.map)?$/.test(f))) rmSync(join(dist, f));
await build({
  input: join(dist, 'cli.js'),
  platform: 'node',
  // Loaded only by `serve` (pino: its logs) and `serve --metrics` (prom-client), from node_modules.
  external: ['prom-client', 'pino'],
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

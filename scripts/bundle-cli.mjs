// Bundles the CLI (dist/cli/main.js and the modules it imports, the SDK's, commander and
// cli-progress included) into dist/longhaul.cjs (the package's `bin`, the entry: enough for
// `--version`) and a few chunks beside it (cli-chunk-*.cjs: the commands, loaded by the entry;
// the report, the demo's sample tree and the bar, loaded when used), so that `longhaul` starts
// without resolving and loading some fifty modules (bench/RESULTS.md, `npm run bench --
// startup`). CommonJS, not ES modules: an ES entry starts Node's ES module loader, ~5 ms of
// every command. dist/cli.js, the entry the README and the tests run as `node dist/cli.js`,
// is an ES module that loads the same bundle. The SDK (dist/sdk/index.js) stays as tsc wrote
// it. Run by `npm run build:ts` after tsc.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import { build } from 'rolldown';

const dist = join(import.meta.dirname, '..', 'dist');
const ADDON = '../native/binding.cjs';
const NATIVE = '\0longhaul-native';
const RUN = 'cli-chunk-run.cjs';

// Every command but `--version` compiles the commands' chunk (~200 KB) first: ~3 ms of a 1-byte
// `send`'s start-up (`npm run bench -- startup`). V8 can start from a code cache instead, which
// Node 20 offers CommonJS modules only through vm.Script (module.enableCompileCache is Node
// 22's). A cache V8 refuses (another Node, other flags) or a missing one costs only that: the
// chunk compiles from source as before.
const REQUIRE_CACHED = `/** A chunk of this bundle, compiled from its code cache (\`\${name}.cache\`) when there is one. */
function requireCached(name) {
\tconst file = require("node:path").join(__dirname, name);
\tif (require.cache[file]) return require.cache[file].exports;
\tconst fs = require("node:fs");
\tlet cachedData;
\ttry {
\t\tcachedData = fs.readFileSync(\`\${file}.cache\`);
\t} catch {
\t\treturn require(name);
\t}
\tconst Module = require("node:module");
\tconst vm = require("node:vm");
\tconst script = new vm.Script(Module.wrap(fs.readFileSync(file, "utf8")), {
\t\tfilename: file,
\t\tcachedData
\t});
\t// In require's cache as require would put it: the report's chunk requires this one too.
\tconst mod = new Module(file, module);
\tmod.filename = file;
\trequire.cache[file] = mod;
\ttry {
\t\tscript.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, __dirname);
\t} catch (err) {
\t\tdelete require.cache[file];
\t\tthrow err;
\t}
\tmod.loaded = true;
\treturn mod.exports;
}
`;
for (const f of readdirSync(dist).filter((f) => /^(cli-chunk-.*|longhaul|cli)\.c?js(\.map|\.cache)?$/.test(f))) rmSync(join(dist, f));
await build({
  input: join(dist, 'cli', 'main.js'),
  platform: 'node',
  // Loaded only by `serve` (pino: its logs) and `serve --metrics` (prom-client), from node_modules.
  external: ['prom-client', 'pino'],
  plugins: [
    {
      // The entry loads the commands' chunk through requireCached (below): compiled from the V8
      // code cache written beside it at the end of this script.
      name: 'run-chunk-from-code-cache',
      renderChunk(code, chunk) {
        if (chunk.fileName !== 'longhaul.cjs') return null;
        const eager = `require(${JSON.stringify(`./${RUN}`)})`;
        if (!code.includes(eager)) throw new Error(`bundle-cli: the entry no longer loads ${RUN} as ${eager}`);
        // Appended after the last line (function declarations hoist): the source map stays right.
        return { code: `${code.replaceAll(eager, `requireCached(${JSON.stringify(`./${RUN}`)})`)}\n${REQUIRE_CACHED}`, map: null };
      },
    },
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
      // The SDK's native.js loads the addon relative to itself (../../native); the bundle, one
      // level up, loads it as ../native, with the require the bundle has.
      name: 'addon-loader',
      resolveId(source, importer) {
        if (source === ADDON) return { id: ADDON, external: true };
        if (importer && resolve(dirname(importer), source) === join(dist, 'sdk', 'native.js')) return { id: NATIVE };
        return null;
      },
      load(id) {
        return id === NATIVE ? `export const native = require(${JSON.stringify(ADDON)});` : null;
      },
    },
  ],
  logLevel: 'warn',
  output: {
    dir: dist,
    format: 'cjs',
    // import('pino'), import('node:http'), … as require: the commands' chunk runs from a code
    // cache through vm.Script (requireCached), where a dynamic import has no loader.
    dynamicImportInCjs: false,
    entryFileNames: 'longhaul.cjs',
    // The bundler's runtime helpers, and the chunks below.
    chunkFileNames: 'cli-chunk-[name].cjs',
    codeSplitting: {
      groups: [
        {
          // What every command but a lone `--version` loads (dist/cli/run.js and what it imports:
          // commander, the SDK, the commands) as one file rather than several, since each
          // module costs a resolve, a read and a compile. The entry (main, stdio) stays out, so
          // that `--version` loads nothing else; the HTML report, the demo's sample tree (and
          // node:crypto with it) and cli-progress (a bar, on a terminal) stay in chunks of their
          // own, loaded only when used.
          name: 'run',
          test: (id) =>
            /node_modules[\\/]commander[\\/]|dist[\\/](sdk|cli)[\\/]/.test(id) &&
            !/dist[\\/]cli[\\/](main|stdio|report|sample-tree)\.js$/.test(id),
        },
      ],
    },
    sourcemap: true,
  },
});

// `node dist/cli.js …` (the README's form inside the repository) runs the same bundle.
writeFileSync(
  join(dist, 'cli.js'),
  "#!/usr/bin/env node\n// The CLI as an ES module entry, for `node dist/cli.js`; `longhaul` (the package's bin) is\n// dist/longhaul.cjs itself, which starts ~5 ms sooner (scripts/bundle-cli.mjs).\nimport './longhaul.cjs';\n",
  { mode: 0o755 },
);

// A dynamic import() in code that vm.Script compiled has no loader to call (Node 20: only an
// experimental option gives it one): the commands' chunk must hold none.
const runCode = readFileSync(join(dist, RUN), 'utf8');
const stray = runCode.split('\n').find((line) => !/^\s*\*/.test(line) && /(^|[^.\w$])import\(/.test(line));
if (stray !== undefined) throw new Error(`bundle-cli: ${RUN} holds a dynamic import(), which requireCached cannot run: ${stray.trim()}`);

// The commands' chunk's code cache: its top level run once in a child (which loads the addon),
// then what V8 compiled written beside it, for requireCached.
const made = spawnSync(
  process.execPath,
  [
    '-e',
    `const fs = require("node:fs"), Module = require("node:module"), vm = require("node:vm");
const file = process.argv[1];
const script = new vm.Script(Module.wrap(fs.readFileSync(file, "utf8")), { filename: file });
const mod = new Module(file, module);
mod.filename = file;
require.cache[file] = mod;
script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, require("node:path").dirname(file));
fs.writeFileSync(file + ".cache", script.createCachedData());`,
    join(dist, RUN),
  ],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);
if (made.status !== 0)
  process.stderr.write(`bundle-cli: no code cache for ${RUN} (status ${made.status}); the CLI compiles it at each start\n`);

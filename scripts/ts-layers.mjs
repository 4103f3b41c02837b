// The TypeScript layers import downwards only: the CLI (ts/cli) is built on the SDK (ts/sdk),
// and the SDK never imports the CLI, so the SDK stays usable without commander, the CLI's
// wiring or the terminal output. Run by `npm run lint`; exits 1 naming each import that
// breaks the rule.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const SDK = join(ROOT, 'ts', 'sdk');
const CLI = join(ROOT, 'ts', 'cli');

// Static imports and re-exports (`from '...'`), dynamic imports and require calls.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)['"]([^'"]+)['"]/g;

const bad = [];
for (const name of readdirSync(SDK, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'))) {
  const file = join(SDK, name);
  for (const m of readFileSync(file, 'utf8').matchAll(SPECIFIER)) {
    const spec = m[1];
    if (!spec.startsWith('.')) continue;
    const target = resolve(dirname(file), spec);
    if (target === CLI || target.startsWith(`${CLI}/`)) bad.push(`${relative(ROOT, file)} imports ${spec}`);
  }
}
if (bad.length) {
  process.stderr.write(`ts/sdk must not import ts/cli:\n${bad.map((b) => `  ${b}\n`).join('')}`);
  process.exit(1);
}

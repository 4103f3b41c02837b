// Issue 30: the core crate's module graph is a fact a check reads, not a hope in a document.
// scripts/layers.mjs runs in `npm run lint`; here it is shown to pass on the crate as it is and
// to fail, naming the file, on a copy with an upward import, a same-layer import between
// folders, and a cycle between siblings.
import { appendFileSync, cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

// A plain ESM script (no typings), as scripts/api-doc.mjs.
import { check, LAYERS, MAX_LINES } from '../scripts/layers.mjs';
import { freshDir } from './helpers.js';

const SRC = join(import.meta.dirname, '..', 'crates', 'longhaul-core', 'src');
type Report = { modules: number; problems: string[] };
const run = check as (dir: string) => Report;

function copyOfSrc(): string {
  const dir = join(freshDir('layers'), 'src');
  cpSync(SRC, dir, { recursive: true });
  return dir;
}

describe('issue 30: layers of the core crate', () => {
  it('every import of the crate goes downward or stays in its folder, with no cycle', () => {
    const r = run(SRC);
    expect(r.problems).toEqual([]);
    expect(r.modules).toBeGreaterThan(40);
  });

  it('docs/ARCHITECTURE.md shows the same layer of every top-level module as the check', () => {
    const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'ARCHITECTURE.md'), 'utf8');
    for (const [module, layer] of Object.entries(LAYERS as Record<string, number>)) {
      if (module === 'scratch') continue;
      expect(doc, module).toMatch(new RegExp(`\\| L${layer} \\| \`${module}`));
    }
  });

  it('an import from a layer above fails, naming the file', () => {
    const dir = copyOfSrc();
    appendFileSync(join(dir, 'sys', 'probe.rs'), '\n#[allow(unused_imports)]\nuse crate::session::handshake;\n');
    expect(run(dir).problems).toEqual([
      expect.stringMatching(/^sys\/probe\.rs: imports session::handshake \(L4\) from L1: a layer above$/),
      // and, since session imports sys, the crate's top-level modules now form a cycle
      expect.stringMatching(/^cycle in crate: .*session -> sys\b/),
    ]);
  });

  it('node and client never import each other', () => {
    const dir = copyOfSrc();
    appendFileSync(join(dir, 'client', 'pull.rs'), '\nfn _x() -> crate::node::ServeOptions { Default::default() }\n');
    expect(run(dir).problems).toEqual([
      expect.stringMatching(/^client\/pull\.rs: imports node::options|^client\/pull\.rs: imports node, another folder/),
    ]);
  });

  it('a cycle between sibling modules fails, naming it', () => {
    const dir = copyOfSrc();
    // node/path.rs is imported by node/push.rs; path importing push closes a circle.
    appendFileSync(join(dir, 'node', 'path.rs'), '\n#[allow(unused_imports)]\nuse super::push;\n');
    expect(run(dir).problems).toEqual(['cycle in node: path -> push -> path']);
  });

  it('a source file over the line limit fails, and a too_many_arguments allow needs a reason', () => {
    const dir = copyOfSrc();
    appendFileSync(join(dir, 'util.rs'), '\n'.repeat(MAX_LINES as number));
    appendFileSync(join(dir, 'hash.rs'), '\n#[allow(clippy::too_many_arguments)]\nfn _f() {}\n');
    const problems = run(dir).problems;
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^hash\.rs:\d+: #\[allow\(clippy::too_many_arguments\)\] without a `\/\/ Reason: …` line/);
    expect(problems[1]).toMatch(new RegExp(`^util\\.rs: \\d+ lines, over ${MAX_LINES}: split it by job$`));
    // With its reason the allow passes.
    const fixed = copyOfSrc();
    appendFileSync(join(fixed, 'hash.rs'), '\n// Reason: a test of the rule.\n#[allow(clippy::too_many_arguments)]\nfn _f() {}\n');
    expect(run(fixed).problems).toEqual([]);
  });
});

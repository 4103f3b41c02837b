#!/usr/bin/env node
// The core crate's module graph, checked (issue 30; docs/ARCHITECTURE.md shows the same table).
//
// Each top-level module of crates/longhaul-core/src sits in a layer; a module may import from
// layers below its own and from inside its own folder (files directly under src/ share one), never from a layer above it nor from
// another folder of its own layer (node/ and client/ never import each other). Within a folder,
// sibling modules must not import each other in a circle (one of them, or something below both,
// should own what they share). The imports are read from the source: every `crate::…`,
// `super::…` and `self::…` path, and a `mod.rs`'s own `use CHILD::…`. Test code (`tests.rs`
// files, `#[cfg(test)] mod tests { … }`) is not checked: a test may reach anywhere.
//
//   node scripts/layers.mjs [SRC_DIR]      exit 1 and a line per violation when the graph is wrong

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Layer of each top-level module. lib.rs (the crate root, which only declares and re-exports) is exempt. */
export const LAYERS = {
  error: 0,
  hash: 0,
  util: 0,
  panic: 0,
  limits: 0,
  sys: 1,
  wire: 2,
  vfile: 2,
  place: 2,
  pool: 3,
  rate: 3,
  ledger: 3,
  sched: 3,
  session: 4,
  node: 5,
  client: 5,
  tools: 5,
  // Test-only helpers (#[cfg(test)] mod scratch): used by tests of every layer.
  scratch: 0,
};

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (name.endsWith('.rs')) out.push(p);
  }
  return out;
}

/** `a/b/mod.rs` → ['a','b']; `a/b.rs` → ['a','b']; `lib.rs` → []. */
function modulePath(rel) {
  const parts = rel.split(sep);
  const last = parts.pop().replace(/\.rs$/, '');
  if (last !== 'mod' && last !== 'lib') parts.push(last);
  return parts;
}

/** The source without comments, string contents, and inline test modules. */
function code(src) {
  let s = src
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
    .replace(/"(?:[^"\\]|\\.)*"/g, '""');
  // An inline test module, from its attribute to its closing brace (strings and comments are
  // gone, so the braces balance).
  const t = s.search(/#\[cfg\(test\)\]\s*mod\s+tests\s*\{/);
  if (t >= 0) {
    let depth = 0;
    let end = s.indexOf('{', t);
    for (; end < s.length; end++) {
      if (s[end] === '{') depth++;
      else if (s[end] === '}' && --depth === 0) break;
    }
    s = s.slice(0, t) + s.slice(end + 1);
  }
  return s;
}

/** Every module path (as a list of idents) the file refers to, resolved from the crate root. */
function references(src, self) {
  const refs = [];
  const children = new Set([...src.matchAll(/\bmod\s+([a-z_][a-z0-9_]*)\s*;/g)].map((m) => m[1]));
  // `crate::a::b`, `super::super::a`, `self::a`, and `crate::{a, b::c}` groups.
  const pathRe = /\b((?:crate|super|self)(?:::(?:super))*)::(\{[^}]*\}|[a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)/g;
  for (const m of src.matchAll(pathRe)) {
    const head = m[1].split('::');
    let base;
    if (head[0] === 'crate') base = [];
    else {
      // `self` is this module; each `super` one level up (for a non-mod.rs file the module is
      // the file itself, whose parent is its folder).
      base = [...self];
      for (const h of head) if (h === 'super') base.pop();
    }
    const tails = m[2].startsWith('{') ? m[2].slice(1, -1).split(',') : [m[2]];
    for (const t of tails) {
      const idents = t
        .trim()
        .split('::')
        .filter((x) => /^[a-z_][a-z0-9_]*$/.test(x) && x !== 'self');
      if (idents.length) refs.push([...base, ...idents]);
    }
  }
  // A module's own children, named from it without a prefix (`use child::X;`, `child::f()`).
  if (children.size) {
    for (const m of src.matchAll(/(?<![:\w])([a-z_][a-z0-9_]*)::/g)) {
      if (children.has(m[1])) refs.push([...self, m[1]]);
    }
  }
  return refs;
}

/** A source file past this many lines is split by job (test files apart). */
export const MAX_LINES = 600;

export function check(srcDir) {
  const modules = new Map(); // 'a/b' → { path, refs }
  const problems = [];
  for (const f of files(srcDir)) {
    const rel = relative(srcDir, f);
    if (rel.split(sep).pop() === 'tests.rs') continue;
    const path = modulePath(rel);
    const text = readFileSync(f, 'utf8');
    const lines = text.split('\n');
    if (lines.length - 1 > MAX_LINES) problems.push(`${rel}: ${lines.length - 1} lines, over ${MAX_LINES}: split it by job`);
    lines.forEach((l, i) => {
      if (/#\[allow\(clippy::too_many_arguments\)\]/.test(l) && !/^\s*\/\/\s*Reason:\s*\S/.test(lines[i - 1] ?? ''))
        problems.push(`${rel}:${i + 1}: #[allow(clippy::too_many_arguments)] without a \`// Reason: …\` line above it`);
    });
    const src = code(text);
    modules.set(path.join('/'), { path, file: rel, refs: references(src, path) });
  }
  const known = new Set(modules.keys());
  const rootFiles = new Set([...modules.values()].filter((m) => m.path.length === 1 && !m.file.includes(sep)).map((m) => m.path[0]));
  /** The longest known module that `idents` names (the rest are items in it). */
  const resolve = (idents) => {
    for (let n = idents.length; n > 0; n--) {
      const k = idents.slice(0, n).join('/');
      if (known.has(k)) return idents.slice(0, n);
    }
    return null;
  };
  // Edges between siblings: for an import from A to B, the children of their deepest common
  // ancestor that hold A and B.
  const siblings = new Map(); // parent → Map(child → Set(child))
  for (const { path, file, refs } of modules.values()) {
    if (path.length === 0) continue; // lib.rs
    const top = path[0];
    if (!(top in LAYERS)) problems.push(`${file}: module \`${top}\` has no layer in scripts/layers.mjs`);
    for (const r of refs) {
      const target = resolve(r);
      if (!target) continue; // an external or an item of lib.rs
      const to = target[0];
      if (to !== top && to in LAYERS && top in LAYERS) {
        if (LAYERS[to] > LAYERS[top])
          problems.push(`${file}: imports ${target.join('::')} (L${LAYERS[to]}) from L${LAYERS[top]}: a layer above`);
        // Files directly under src/ share a folder: same-layer files there may use each other.
        else if (LAYERS[to] === LAYERS[top] && !(rootFiles.has(top) && rootFiles.has(to)))
          problems.push(`${file}: imports ${target.join('::')}, another folder of its own layer L${LAYERS[top]}`);
      }
      let k = 0;
      while (k < path.length && k < target.length && path[k] === target[k]) k++;
      // An ancestor or a descendant (a facade and its parts) is not a sibling edge.
      if (k === path.length || k === target.length) continue;
      const parent = path.slice(0, k).join('/');
      const a = path[k];
      const b = target[k];
      if (!siblings.has(parent)) siblings.set(parent, new Map());
      const g = siblings.get(parent);
      if (!g.has(a)) g.set(a, new Set());
      g.get(a).add(b);
    }
  }
  for (const [parent, g] of siblings) {
    for (const cycle of cycles(g)) problems.push(`cycle in ${parent || 'crate'}: ${cycle.join(' -> ')}`);
  }
  return { modules: modules.size, problems };
}

/** One cycle per strongly connected component of more than one node (Tarjan). */
function cycles(g) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) out.push([...comp.sort(), comp[0]]);
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? fileURLToPath(new URL('../crates/longhaul-core/src', import.meta.url));
  const { modules, problems } = check(dir);
  for (const p of problems) console.error(`layers: ${p}`);
  if (problems.length) {
    console.error(`layers: ${problems.length} problem(s) in ${modules} modules (table: scripts/layers.mjs, docs/ARCHITECTURE.md)`);
    process.exit(1);
  }
  console.log(`layers: ${modules} modules, every import downward or within its folder, no cycle`);
}

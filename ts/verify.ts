// Compares two trees the way a user checks a copy: same entries, kinds, sizes, bytes, modes,
// mtimes (to the nanosecond) and symlink targets. Used by the demo and by the tests.
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface TreeDifference {
  path: string;
  what: 'missing' | 'extra' | 'kind' | 'size' | 'content' | 'mode' | 'mtime' | 'target';
  expected?: string;
  actual?: string;
}

export interface CompareOptions {
  /** Compare directory mtimes too (default true). */
  dirMtimes?: boolean;
}

async function listTree(root: string): Promise<Map<string, import('node:fs').BigIntStats>> {
  const out = new Map<string, import('node:fs').BigIntStats>();
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(join(root, rel), { withFileTypes: true });
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const st = await lstat(join(root, r), { bigint: true });
      out.set(r, st);
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out;
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const ba = Buffer.allocUnsafe(1 << 20);
    const bb = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; ;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length, pos), fb.read(bb, 0, bb.length, pos)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
      pos += ra.bytesRead;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

const kindOf = (st: import('node:fs').BigIntStats): string =>
  st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';

/** Lists every difference between `expected` and `actual`; an empty list means identical. */
export async function compareTrees(expected: string, actual: string, opts: CompareOptions = {}): Promise<TreeDifference[]> {
  const [a, b] = await Promise.all([listTree(expected), listTree(actual)]);
  const diffs: TreeDifference[] = [];
  for (const [path, sa] of a) {
    const sb = b.get(path);
    if (!sb) {
      diffs.push({ path, what: 'missing' });
      continue;
    }
    const ka = kindOf(sa);
    if (ka !== kindOf(sb)) {
      diffs.push({ path, what: 'kind', expected: ka, actual: kindOf(sb) });
      continue;
    }
    if (ka === 'symlink') {
      const [ta, tb] = await Promise.all([readlink(join(expected, path)), readlink(join(actual, path))]);
      if (ta !== tb) diffs.push({ path, what: 'target', expected: ta, actual: tb });
      continue;
    }
    if ((sa.mode & 0o7777n) !== (sb.mode & 0o7777n)) {
      diffs.push({ path, what: 'mode', expected: (sa.mode & 0o7777n).toString(8), actual: (sb.mode & 0o7777n).toString(8) });
    }
    if ((ka === 'file' || opts.dirMtimes !== false) && sa.mtimeNs !== sb.mtimeNs) {
      diffs.push({ path, what: 'mtime', expected: String(sa.mtimeNs), actual: String(sb.mtimeNs) });
    }
    if (ka === 'file') {
      if (sa.size !== sb.size) diffs.push({ path, what: 'size', expected: String(sa.size), actual: String(sb.size) });
      else if (!(await sameBytes(join(expected, path), join(actual, path)))) diffs.push({ path, what: 'content' });
    }
  }
  for (const path of b.keys()) if (!a.has(path)) diffs.push({ path, what: 'extra' });
  return diffs;
}

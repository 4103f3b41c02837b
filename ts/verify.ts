// Compares two trees the way a user checks a copy: same entries, kinds, sizes, bytes, modes,
// mtimes (to the nanosecond) and symlink targets. Used by the demo and by the tests.
//
// The walk and the comparison keep up to CONCURRENCY file system calls in flight (libuv's
// thread pool runs them four at a time by default), and each comparing task reuses one pair of
// CHUNK-sized buffers: a 20,000-file tree took 25 s one call at a time with a fresh pair of
// 1 MiB buffers a file, about a second this way.
import type { BigIntStats } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

import { LonghaulError } from './errors.js';

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

const CONCURRENCY = 16;
const CHUNK = 256 << 10;

/**
 * Runs `task` over a queue that tasks may add to, at most `limit` at once; settles when the
 * queue is empty and nothing runs, or with the first error (the tasks in flight are not
 * waited for).
 */
function drain<T>(limit: number, first: T[], task: (item: T, add: (item: T) => void) => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    const queue = [...first];
    const add = (item: T): void => void queue.push(item);
    let running = 0;
    let failed = false;
    const pump = (): void => {
      while (!failed && running < limit && queue.length > 0) {
        running++;
        task(queue.pop()!, add).then(
          () => {
            running--;
            pump();
          },
          (e: unknown) => {
            failed = true;
            reject(e);
          },
        );
      }
      if (!failed && running === 0 && queue.length === 0) resolve();
    };
    pump();
  });
}

/** Every entry under `root` by its path relative to it, with its lstat. */
async function listTree(root: string): Promise<Map<string, BigIntStats>> {
  const out = new Map<string, BigIntStats>();
  type Item = { dir: string } | { entry: string };
  await drain<Item>(CONCURRENCY, [{ dir: '' }], async (item, add) => {
    if ('dir' in item) {
      for (const name of await readdir(join(root, item.dir))) add({ entry: item.dir ? `${item.dir}/${name}` : name });
      return;
    }
    const st = await lstat(join(root, item.entry), { bigint: true });
    out.set(item.entry, st);
    if (st.isDirectory()) add({ dir: item.entry });
  });
  return out;
}

/** Whether two files hold the same bytes, read through the caller's two buffers. */
async function sameBytes(a: string, b: string, ba: Buffer, bb: Buffer): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    for (let pos = 0; ;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length, pos), fb.read(bb, 0, bb.length, pos)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
      // A short read of a regular file is its end.
      if (ra.bytesRead < ba.length) return true;
      pos += ra.bytesRead;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

const kindOf = (st: BigIntStats): string => (st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other');

/**
 * Lists every difference between `expected` and `actual`; an empty list means identical.
 * Differences come in the order of their paths (code units), the extra entries last. Rejects
 * with E_NOT_FOUND when a tree (or an entry, removed while comparing) is missing, E_IO on any
 * other file system error.
 */
export async function compareTrees(expected: string, actual: string, opts: CompareOptions = {}): Promise<TreeDifference[]> {
  try {
    return await compare(expected, actual, opts);
  } catch (err) {
    throw asLonghaulError(err);
  }
}

/** A missing tree is E_NOT_FOUND; any other file system error E_IO, naming the path. */
function asLonghaulError(err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code !== 'string' || !e.syscall) return err;
  const where = e.path === undefined ? '' : `: ${JSON.stringify(e.path)}`;
  return e.code === 'ENOENT'
    ? new LonghaulError('E_NOT_FOUND', `not found while comparing trees${where}`, { cause: err })
    : new LonghaulError('E_IO', `${e.syscall} failed while comparing trees${where}: ${e.code}`, { cause: err });
}

async function compare(expected: string, actual: string, opts: CompareOptions): Promise<TreeDifference[]> {
  const [a, b] = await Promise.all([listTree(expected), listTree(actual)]);
  const paths = [...a.keys()].sort();
  const found: TreeDifference[][] = paths.map(() => []);
  let next = 0;
  const compareOne = async (i: number, bufs: [Buffer, Buffer]): Promise<void> => {
    const path = paths[i]!;
    const sa = a.get(path)!;
    const sb = b.get(path);
    const diffs = found[i]!;
    if (!sb) {
      diffs.push({ path, what: 'missing' });
      return;
    }
    const ka = kindOf(sa);
    if (ka !== kindOf(sb)) {
      diffs.push({ path, what: 'kind', expected: ka, actual: kindOf(sb) });
      return;
    }
    if (ka === 'symlink') {
      const [ta, tb] = await Promise.all([readlink(join(expected, path)), readlink(join(actual, path))]);
      if (ta !== tb) diffs.push({ path, what: 'target', expected: ta, actual: tb });
      return;
    }
    if ((sa.mode & 0o7777n) !== (sb.mode & 0o7777n)) {
      diffs.push({ path, what: 'mode', expected: (sa.mode & 0o7777n).toString(8), actual: (sb.mode & 0o7777n).toString(8) });
    }
    if ((ka === 'file' || opts.dirMtimes !== false) && sa.mtimeNs !== sb.mtimeNs) {
      diffs.push({ path, what: 'mtime', expected: String(sa.mtimeNs), actual: String(sb.mtimeNs) });
    }
    if (ka === 'file') {
      if (sa.size !== sb.size) diffs.push({ path, what: 'size', expected: String(sa.size), actual: String(sb.size) });
      else if (!(await sameBytes(join(expected, path), join(actual, path), ...bufs))) diffs.push({ path, what: 'content' });
    }
  };
  // CONCURRENCY tasks, each with its own pair of buffers, take the paths in turn.
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, paths.length) }, async () => {
      const bufs: [Buffer, Buffer] = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
      while (next < paths.length) await compareOne(next++, bufs);
    }),
  );
  const diffs = found.flat();
  for (const path of [...b.keys()].sort()) if (!a.has(path)) diffs.push({ path, what: 'extra' });
  return diffs;
}

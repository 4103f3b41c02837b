// Compares two trees the way a user checks a copy: same entries, kinds, sizes, bytes, modes,
// mtimes (to the nanosecond) and symlink targets. Behind `longhaul compare`; the demo and the
// tests check every transfer with it. The work runs in the engine (crates/longhaul-core,
// compare.rs) on threads of its own: each tree walked by one, the files compared by four.
import type { ClientOptions } from './client.js';
import { resolveToken } from './common.js';
import { fromNative } from './errors.js';
import { native, type Binding } from './native.js';
import { formatAddress, parseTarget, type Target } from './target.js';

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

/**
 * Lists every difference between `expected` and `actual`; an empty list means identical.
 * Differences come in the byte order of their paths, the extra entries last. Two files (or a
 * file and a directory) are compared as one entry, under the name of `expected`. Rejects with
 * E_NOT_FOUND when a tree (or an entry, removed while comparing) is missing, E_IO on any
 * other file system error.
 */
export async function compareTrees(expected: string, actual: string, opts: CompareOptions = {}): Promise<TreeDifference[]> {
  let diffs;
  try {
    diffs = await native.compareTrees(expected, actual, opts.dirMtimes !== false);
  } catch (err) {
    throw fromNative(err);
  }
  return fromBinding(diffs);
}

/**
 * As `compareTrees`, with the actual tree on a node (`HOST:PORT/PATH`): the node lists it and
 * hashes each of its files (BLAKE3) while this process hashes the local files, so contents are
 * compared by digest, not by reading the node's bytes over the network. The differences are
 * those `compareTrees` reports for the same two trees. Rejects with E_VERSION when the node runs
 * an older longhaul without the request, E_PATH_ESCAPE when PATH leaves the node's root (`..`,
 * a symlink), E_NOT_FOUND when either side is missing.
 */
export async function compareWithNode(
  expected: string,
  url: string | Target,
  opts: CompareOptions & ClientOptions = {},
): Promise<TreeDifference[]> {
  const t = typeof url === 'string' ? parseTarget(url) : url;
  let diffs;
  try {
    diffs = await native.compareWithNode(
      expected,
      {
        address: formatAddress(t.host, t.port),
        token: resolveToken(opts),
        tlsPin: opts.tlsPin,
        tlsCa: opts.tlsCa,
        timeoutMs: opts.timeoutMs,
      },
      t.dest,
      opts.dirMtimes !== false,
    );
  } catch (err) {
    throw fromNative(err);
  }
  return fromBinding(diffs);
}

function fromBinding(diffs: Binding.BindingDifference[]): TreeDifference[] {
  return diffs.map(
    (d) =>
      ({
        path: d.path,
        what: d.what,
        ...(d.expected == null ? {} : { expected: d.expected }),
        ...(d.actual == null ? {} : { actual: d.actual }),
      }) as TreeDifference,
  );
}

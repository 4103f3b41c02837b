// The workloads of `npm run bench` (bench/compare.mjs), shared with the benches that sweep one
// setting on the same data (bench/blocksize.mjs), with what both do about ext4 after deleting them.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** When a bench last deleted its trees (ms, as text). */
export const COOLDOWN_FILE = join(tmpdir(), 'longhaul-bench-deleted-at');
// ext4 without a journal skips inodes freed in the last 60 s, or 360 s while their inode-table
// block is dirty (creating files dirties it again), checking each candidate one by one: creating
// files right after many were deleted is ~10x slower. Waiting that out is not always enough:
// 20 minutes after ~2 million files were deleted, creation still ran at 3,000-6,000 files/s and
// went back to 30,000 at once when the page cache (and with it the inode-table blocks ext4
// consults) was written back and dropped. Dropping right after the deletion did not help
// (likely because creating files dirties those blocks again within the window). So: wait out
// the window, then drop.
const COOLDOWN_S = 420;
/** After deleting many files: note when, for the next bench's `coolDown`. */
export const markDeleted = () => writeFileSync(COOLDOWN_FILE, String(Date.now()));
/** Before timing file creation: waits until the last bench's deletion is 7 minutes old, then
 * writes back and drops the page cache (as root). True if it dropped: page-cached sources must
 * be read back in. `creates: false` (a run that makes a few large files) skips the wait. */
export async function coolDown(log, { creates = true } = {}) {
  if (creates && existsSync(COOLDOWN_FILE)) {
    const left = COOLDOWN_S - (Date.now() - Number(readFileSync(COOLDOWN_FILE, 'utf8'))) / 1000;
    if (left > 0) {
      log(`waiting ${Math.ceil(left)} s: a bench deleted its trees, and ext4 creates files slowly for minutes after that`);
      await new Promise((r) => setTimeout(r, left * 1000));
    }
    rmSync(COOLDOWN_FILE, { force: true });
  }
  return dropCaches();
}
/** Reads every file under `path` (or the file) so that a workload is timed page-cached. */
export const readIntoCache = (path) => spawnSync('bash', ['-c', `find ${path} -type f -exec cat {} + > /dev/null`]);
/** `sync` and drop the page cache; needs root, false where it cannot. */
export const dropCaches = () => spawnSync('bash', ['-c', 'sync && echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' }).status === 0;

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
// Random bytes that files are cut from (at seeded offsets), filled on first use.
let POOL;
function pool() {
  if (!POOL) {
    POOL = Buffer.allocUnsafe(64 * MiB);
    for (let i = 0; i < POOL.length; i += 65536) crypto.getRandomValues(POOL.subarray(i, Math.min(i + 65536, POOL.length)));
  }
  return POOL;
}
function writeFile(path, size, r) {
  const POOL = pool();
  const fd = openSync(path, 'w');
  for (let done = 0; done < size; ) {
    const n = Math.min(size - done, 8 * MiB);
    const off = Math.floor(r() * (POOL.length - n));
    writeSync(fd, POOL, off, n);
    done += n;
  }
  closeSync(fd);
}
/** The bench's workloads, full size or `quick`: each has `what` and `make(dir)`, which writes it
 * under `dir` (deterministic contents from a seeded generator) and returns its path. */
export function workloads(QUICK) {
  return {
  BIG: {
    what: QUICK ? 'one 256 MiB random file, page-cached' : 'one 4 GiB random file, page-cached',
    make(dir) {
      const r = rng(1);
      writeFile(join(dir, 'big.bin'), QUICK ? 256 * MiB : 4 * GiB, r);
      return join(dir, 'big.bin');
    },
  },
  LOSF: {
    what: QUICK ? '5,000 files of 4 KiB in 50 directories' : '100,000 files of 4 KiB in 1,000 directories',
    make(dir) {
      const r = rng(2);
      const root = join(dir, 'losf');
      const dirs = QUICK ? 50 : 1000;
      for (let d = 0; d < dirs; d++) {
        mkdirSync(join(root, `d${d}`), { recursive: true });
        for (let f = 0; f < 100; f++) writeFile(join(root, `d${d}`, `f${f}`), 4096, r);
      }
      return root;
    },
  },
  MIXED: {
    what: QUICK
      ? '2,500 files, long-tailed sizes (source tree + build outputs), ~100 MiB'
      : '50,000 files, long-tailed sizes (source tree + build outputs), ~2 GiB',
    make(dir) {
      // 80% "source": log-normal around 4 KiB; 19% "build outputs": log-normal around 48 KiB;
      // 1% empty; and a handful of large artifacts (archives, binaries) of 4-64 MiB.
      const r = rng(3);
      const root = join(dir, 'mixed');
      const n = QUICK ? 2500 : 50000;
      const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
      let total = 0;
      for (let i = 0; i < n; i++) {
        const kind = r();
        const size = kind < 0.01 ? 0 : kind < 0.81 ? Math.exp(Math.log(4096) + 1.2 * gauss()) : Math.exp(Math.log(48 * 1024) + 1.5 * gauss());
        const bytes = Math.min(Math.round(size), 16 * MiB);
        const top = kind < 0.81 ? 'src' : 'build';
        const sub = join(root, top, `m${Math.floor(r() * (n / 500))}`, `p${Math.floor(r() * 5)}`);
        mkdirSync(sub, { recursive: true });
        writeFile(join(sub, `f${i}${kind < 0.81 ? '.c' : '.o'}`), bytes, r);
        total += bytes;
      }
      const target = QUICK ? 100 * MiB : 2 * GiB;
      mkdirSync(join(root, 'dist'), { recursive: true });
      for (let i = 0; total < target; i++) {
        const bytes = Math.min(target - total, Math.round((4 + r() * 60) * MiB * (QUICK ? 1 / 16 : 1)));
        writeFile(join(root, 'dist', `artifact${i}.tar`), bytes, r);
        total += bytes;
      }
      return root;
    },
  },
};
}

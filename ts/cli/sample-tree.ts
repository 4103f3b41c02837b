// `longhaul demo`: the main job on one machine. Generates a sample tree (one large file and
// thousands of small ones, with empty files, an empty directory and symlinks) in a temp dir,
// starts a node on 127.0.0.1, sends the tree with the default settings, verifies every byte
// and every mode, mtime and link target, and prints the summary.
import { randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SampleTreeOptions {
  files: number;
  bigBytes: number;
  filesPerDir?: number;
}

/** Sizes with a long tail, like a source tree: most files are small, a few are larger. */
function sampleSize(i: number): number {
  if (i % 97 === 0) return 0;
  const x = ((i * 2654435761) >>> 0) / 2 ** 32;
  return Math.floor(64 * Math.exp(x * Math.log(65536 / 64)));
}

export async function makeSampleTree(root: string, opts: SampleTreeOptions): Promise<void> {
  const perDir = opts.filesPerDir ?? 100;
  await mkdir(join(root, 'empty-dir'), { recursive: true });
  const big = Buffer.allocUnsafe(Math.min(opts.bigBytes, 16 << 20) || 1);
  if (opts.bigBytes > 0) {
    const fh = await import('node:fs/promises').then((m) => m.open(join(root, 'big.bin'), 'w'));
    try {
      for (let done = 0; done < opts.bigBytes;) {
        const n = Math.min(big.length, opts.bigBytes - done);
        randomFillSync(big, 0, n);
        await fh.write(big, 0, n);
        done += n;
      }
    } finally {
      await fh.close();
    }
  }
  const pool = Buffer.allocUnsafe(1 << 20);
  randomFillSync(pool);
  const dirs = Math.ceil(opts.files / perDir);
  for (let d = 0; d < dirs; d++) await mkdir(join(root, 'small', `d${String(d).padStart(4, '0')}`), { recursive: true });
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < opts.files; i++) {
    const size = sampleSize(i);
    const start = (i * 7919) % (pool.length - size);
    const file = join(root, 'small', `d${String(Math.floor(i / perDir)).padStart(4, '0')}`, `f${i}.dat`);
    jobs.push(writeFile(file, pool.subarray(start, start + size)));
    if (jobs.length >= 64) await Promise.all(jobs.splice(0));
  }
  await Promise.all(jobs);
  await symlink('../big.bin', join(root, 'small', 'link-to-big'));
  await symlink('does/not/exist', join(root, 'small', 'dangling-link'));
}

export async function makeDemoDir(parent?: string): Promise<string> {
  return mkdtemp(join(parent ?? tmpdir(), 'longhaul-demo-'));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

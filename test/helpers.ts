import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, closeSync, writeSync, writeFileSync, symlinkSync, chmodSync, utimesSync } from 'node:fs';
import { join } from 'node:path';

/** The built CLI (dist/cli.js). */
export const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');

/** Runs the CLI with `args` as its own process, no stdin; its status and what it printed. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return finish(spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
}

/** Waits for a child (spawned with piped stdout and stderr) to end: its status and what it printed. */
export function finish(child: ChildProcess): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** A fresh directory under the run's scratch directory. */
export function freshDir(name: string): string {
  const base = process.env.LONGHAUL_TEST_DIR;
  if (!base) throw new Error('LONGHAUL_TEST_DIR is not set: run through vitest with test/global-setup.ts');
  return mkdtempSync(join(base, `${name}-`));
}

/**
 * A file of `bytes` zeros whose blocks are allocated (`fallocate`): quick to make and not
 * sparse, so a send moves every byte of it (a sparse file's holes do not travel).
 */
export function allocatedFile(path: string, bytes: number): void {
  const r = spawnSync('fallocate', ['-l', String(bytes), path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`fallocate ${path}: ${r.stderr}`);
}

/** The JSON objects of a command's output, one a line. */
export const jsonLines = (s: string): Record<string, unknown>[] =>
  s
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** A file of `bytes` random bytes. */
export function randomFile(path: string, bytes: number): void {
  const chunk = Buffer.allocUnsafe(8 << 20);
  const fd = openSync(path, 'w');
  try {
    for (let done = 0; done < bytes;) {
      const n = Math.min(chunk.length, bytes - done);
      randomFillSync(chunk, 0, n);
      writeSync(fd, chunk, 0, n);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * A tree of `files` small files (0..8 KiB, some empty) in directories of 200, with empty
 * directories, symlinks (relative, absolute, dangling), names with spaces and non-ASCII
 * characters, a read-only directory, varied modes and mtimes with nanoseconds.
 */
export function smallTree(root: string, files: number): void {
  const pool = Buffer.allocUnsafe(1 << 20);
  randomFillSync(pool);
  mkdirSync(join(root, 'empty dir', 'nested empty'), { recursive: true });
  const dirs = Math.ceil(files / 200);
  for (let d = 0; d < dirs; d++) {
    const dir = join(root, d % 3 === 0 ? `dir ${d}` : d % 3 === 1 ? `répertoire-${d}` : `目录${d}`);
    mkdirSync(dir, { recursive: true });
    for (let i = d * 200; i < Math.min(files, (d + 1) * 200); i++) {
      const size = i % 50 === 0 ? 0 : (i * 2654435761) % 8192;
      const start = (i * 7919) % (pool.length - size);
      const name = i % 7 === 0 ? `file with spaces ${i}.txt` : i % 7 === 1 ? `ünïcödé-${i}.bin` : `f${i}`;
      const p = join(dir, name);
      writeFileSync(p, pool.subarray(start, start + size));
      if (i % 11 === 0) chmodSync(p, 0o600);
      if (i % 13 === 0) chmodSync(p, 0o755);
    }
  }
  symlinkSync('dir 0/f2', join(root, 'relative link'));
  symlinkSync('/etc/hostname', join(root, 'absolute-link'));
  symlinkSync('no/such/target', join(root, 'dangling link'));
  mkdirSync(join(root, 'read-only dir'));
  writeFileSync(join(root, 'read-only dir', 'inside'), 'kept\n');
  utimesSync(join(root, 'read-only dir', 'inside'), new Date('2001-02-03T04:05:06.789Z'), new Date('2001-02-03T04:05:06.789Z'));
  chmodSync(join(root, 'read-only dir'), 0o555);
}

// Workload makers and small helpers shared by the in-process benches (streams, integrity).
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** A file of `bytes` random bytes, written 8 MiB at a time. */
export function bigFile(path, bytes) {
  const buf = Buffer.allocUnsafe(8 << 20);
  const fd = openSync(path, 'w');
  for (let done = 0; done < bytes; done += buf.length) writeSync(fd, randomFillSync(buf));
  closeSync(fd);
}

/** `files` files of 0-8 KiB (random bytes) in directories of 200 under `root`. */
export function tree(root, files) {
  const pool = randomFillSync(Buffer.allocUnsafe(1 << 20));
  for (let d = 0; d < files / 200; d++) {
    mkdirSync(join(root, `d${d}`), { recursive: true });
    for (let i = 0; i < 200; i++) writeFileSync(join(root, `d${d}`, `f${i}`), pool.subarray(0, ((d * 200 + i) * 2654435761) % 8192));
  }
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** `--runs N` (default `dflt`) and `--out FILE` from argv. */
export function benchArgs(argv, dflt = 3) {
  const runs = Number(argv[argv.indexOf('--runs') + 1] || dflt) || dflt;
  const outIdx = argv.indexOf('--out');
  return { runs, out: outIdx >= 0 ? argv[outIdx + 1] : undefined };
}

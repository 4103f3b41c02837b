// Workload makers and small helpers shared by the in-process benches (streams, integrity).
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

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

/** CPU time so far over all CPUs, in seconds, from /proc/stat: `busy` (user, nice, system, irq,
 * softirq) and `steal` (time the hypervisor gave to other guests while this one wanted to run:
 * on a shared VM it slows every tool in a run, and explains much of the spread between runs). */
export function cpuTimes() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const hz = 100; // USER_HZ
  return { busy: (f[0] + f[1] + f[2] + f[5] + f[6]) / hz, steal: (f[7] ?? 0) / hz };
}

/** MiB of free memory this KVM guest has handed back to its host so far (virtio-balloon free
 * page reporting; 0 where the kernel has no such counter). Each page handed back costs a host
 * fault when the guest next touches it, so a run during which the count grows was slowed by
 * it (bench/hostmem.mjs). */
export function hostReturnedMiB() {
  try {
    return Number(readFileSync('/sys/module/page_reporting/parameters/reported_kib', 'utf8')) / 1024;
  } catch {
    return 0;
  }
}

/** Waits until the guest has handed back to the host all the free memory it is going to (the
 * counter of hostReturnedMiB still for `quietMs`, longer than the kernel's 2 s reporting delay;
 * at most `maxMs`), so that every run starts in the same state: whatever the run before freed
 * is then cold for every tool alike, where otherwise the tool that runs right after a large
 * free gets warm pages and the next one cold ones (bench/RESULTS.md, "memory the host takes
 * back"). Resolves to the seconds waited. */
export async function hostMemorySettled(quietMs = 2500, maxMs = 30000) {
  const t0 = performance.now();
  let last = hostReturnedMiB();
  let still = performance.now();
  while (performance.now() - t0 < maxMs) {
    await new Promise((r) => setTimeout(r, 250));
    const now = hostReturnedMiB();
    if (now !== last) [last, still] = [now, performance.now()];
    else if (performance.now() - still >= quietMs) break;
  }
  return (performance.now() - t0) / 1000;
}

/**
 * A bench's command-line options, read with `util.parseArgs` (`options` in its format; every
 * value arrives as a string or a boolean). An unknown option or a missing value is an error
 * rather than a full run with the defaults; `--help` prints the comment at the top of the
 * bench's file (`import.meta.filename`), which says what it measures and how to run it.
 */
export function benchOptions(file, options) {
  const header = readFileSync(file, 'utf8').split('\n');
  const usage = header.slice(0, header.findIndex((l) => !l.startsWith('//'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n');
  let values;
  try {
    ({ values } = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
  } catch (e) {
    console.error(`${e.message}\n\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  return values;
}

// The emulated WAN (crates/longhaul-netem, `lh-netem`): two network namespaces joined by a
// user-space TUN relay with a one-way delay, a rate with a drop-tail queue and seeded random
// loss (these kernels have no netem qdisc). Side `a` is 10.77.0.1, side `b` 10.77.0.2; a
// program runs on a side under `ip netns exec`. Needs root, as network namespaces do.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const ROOT = join(import.meta.dirname, '..');
export const NETEM = join(ROOT, 'target', 'release', 'lh-netem');

export interface WanSide {
  netns: string;
  addr: string;
  /** The side's TUN device. */
  dev: string;
}

export interface Wan {
  a: WanSide;
  b: WanSide;
  /** Starts `cmd args` on a side. */
  spawn(side: WanSide, cmd: string, args: string[]): ChildProcess;
  /** Stops the relay (its namespaces go with it) and resolves to its counters. */
  close(): Promise<{ aToB: Counters; bToA: Counters }>;
}

export interface Counters {
  packets: number;
  bytes: number;
  lost: number;
  dropped: number;
  /** Dropped at the sending side's TUN device before the relay read them (its queue full). */
  tunDropped: number;
}

/** Builds lh-netem (a no-op when it is up to date). */
export function buildNetem(): void {
  execFileSync('cargo', ['build', '--release', '-q', '-p', 'longhaul-netem'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
}

/** Starts a link: `rtt` like "30ms", `rate` like "100mbit", `loss` like "0.5%". */
export async function startWan(link: { rtt: string; rate?: string; loss?: string; seed?: number }): Promise<Wan> {
  buildNetem();
  const args = ['--rtt', link.rtt, '--rate', link.rate ?? '0', '--loss', link.loss ?? '0', '--seed', String(link.seed ?? 1)];
  const relay = spawn(NETEM, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  relay.stderr.on('data', (d) => (err += d));
  const first = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: relay.stdout });
    lines.once('line', resolve);
    relay.once('exit', (code) => reject(new Error(`lh-netem exited (${code}): ${err}`)));
  });
  const info = JSON.parse(first) as { a: WanSide; b: WanSide };
  const children: ChildProcess[] = [];
  return {
    a: info.a,
    b: info.b,
    spawn(side, cmd, cmdArgs) {
      const child = spawn('ip', ['netns', 'exec', side.netns, cmd, ...cmdArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      return child;
    },
    async close() {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null)));
      const exited = new Promise((r) => relay.once('exit', r));
      relay.kill('SIGTERM');
      await exited;
      return JSON.parse(err.trim().split('\n').at(-1)!) as { aToB: Counters; bToA: Counters };
    },
  };
}

/** Resolves once a child prints a line that `ready` accepts. */
export function readyLine(child: ChildProcess, ready: (line: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (l) => ready(l) && resolve(l));
    child.once('exit', (code) => reject(new Error(`exited (${code}) before it was ready: ${err}`)));
  });
}

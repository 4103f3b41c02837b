// longhaul's public SDK: `serve` starts a storage node, `send` moves a file or a tree to one.
// The work runs on the engine's own threads; these functions convert options, forward progress
// and cancellation, and turn engine errors into LonghaulError with a stable `code`.
import { fromNative, LonghaulError } from './errors.js';
import { native } from './native.js';
import { formatAddress, parseTarget, type Target } from './target.js';

export { LonghaulError, exitCodeFor } from './errors.js';
export { parseTarget, parseListen, formatAddress, type Target } from './target.js';
export { compareTrees, type TreeDifference } from './verify.js';

export interface ServeOptions {
  /** Directory the node stores into; created if missing. */
  root: string;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: a free one; read it back from `address.port`). */
  port?: number;
  /** Buffers in the node's pool, shared by all transfers (default 16 x 4 MiB). */
  poolBuffers?: number;
  /** Largest block a sender may use, in bytes (default 4 MiB). */
  maxBlock?: number;
  /** Disk-writer threads per transfer (default 4). */
  writers?: number;
  /** Most data streams one transfer may open (default 64). */
  maxStreams?: number;
  /** CPUs for the node's I/O threads (default: near the NIC and the root's disk). */
  cores?: Cores;
  pin?: PinMode;
  /** Milliseconds a new connection has for its first frame (default 30,000). */
  handshakeTimeoutMs?: number;
  /** Milliseconds a data connection has for each frame (a 4 MiB block included), and a transfer for any progress (default 60,000). */
  idleTimeoutMs?: number;
}

/** CPU lists in the kernel's form, e.g. `{ io: '2-7', other: '0-1,8-15' }`. */
export interface Cores {
  io: string;
  other?: string;
}

/** `auto` pins threads on machines of several NUMA nodes, or when cores are set. */
export type PinMode = 'auto' | 'always' | 'never';
export type SchedulerName = 'pipelined' | 'adaptive' | 'auto';

export interface NodeStats {
  active: number;
  completed: number;
  failed: number;
  bytesReceived: number;
  poolBytes: number;
  poolLocked: boolean;
  poolLockFallback?: string;
  /** Placement of the most recent transfer, and whether its threads were pinned. */
  lastPlacement?: string;
}

export interface StorageNode {
  readonly address: { host: string; port: number };
  /** `host:port`, ready to pass to `send`. */
  readonly url: string;
  readonly root: string;
  stats(): NodeStats;
  /** Stops the node; transfers in flight fail and leave no partial files. */
  close(): Promise<void>;
  /** Lets the process exit while the node is still open (like net.Server#unref). */
  unref(): this;
}

/** Starts a storage node. It keeps the process alive until `close()` (or `unref()`). */
export async function serve(options: ServeOptions): Promise<StorageNode> {
  let server: import('./native.js').Binding.BindingServer;
  try {
    const { cores, ...rest } = options;
    server = native.serve({ ...rest, coresIo: cores?.io, coresOther: cores?.other });
  } catch (err) {
    throw fromNative(err);
  }
  // The node's threads are invisible to libuv; a timer keeps the event loop alive for them.
  const keepAlive = setInterval(() => {}, 1 << 30);
  let closed = false;
  const node: StorageNode = {
    address: { host: server.host, port: server.port },
    url: formatAddress(server.host, server.port),
    root: server.root,
    stats() {
      const s = server.stats();
      if (!s) throw new LonghaulError('E_CLOSED', 'the node is closed');
      return { ...s, poolLockFallback: s.poolLockFallback ?? undefined, lastPlacement: s.lastPlacement ?? undefined };
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(keepAlive);
      server.close();
    },
    unref() {
      keepAlive.unref();
      return this;
    },
  };
  return node;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do when it is not ok. */
  advice?: string;
}

/** Probes each fast path and limit the engine depends on (what `longhaul doctor` prints). */
export function doctor(): Check[] {
  return native.doctor().map((c) => ({ ...c, advice: c.advice ?? undefined }));
}

export interface Progress {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
  seconds: number;
  /** Smoothed over the whole transfer so far. */
  bytesPerSecond: number;
  perStreamBytes: number[];
}

export interface SendOptions {
  /** Parallel TCP data streams (default 2, chosen by measurement: see bench/RESULTS.md). */
  streams?: number;
  /** Block size in bytes (default 4 MiB; at most the node's limit). */
  blockSize?: number;
  /** Buffers in the sender's pool (default 2 x streams + readers). */
  poolBuffers?: number;
  /** Disk-reader threads (default min(streams, 4), at least 2). */
  readers?: number;
  /** Cancels the transfer; the promise rejects with code E_CANCELLED. */
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Milliseconds between progress events (default 100). */
  progressIntervalMs?: number;
  /** Who runs the blocks: mdtmFTP's dedicated threads, Vyukov's adaptive workers, or `auto` (default), which probes both. */
  scheduler?: SchedulerName;
  /** Processing besides XXH3: `blake3` hashes every block with BLAKE3 and the node checks it (default `none`). */
  digest?: 'none' | 'blake3';
  /** CPUs for the I/O threads (default: near the NIC and the source's disk). */
  cores?: Cores;
  pin?: PinMode;
  /** Pipelined processing threads (default 1, or one per CPU with blake3). */
  processors?: number;
  /** Adaptive worker threads (default CPUs + 2). */
  workers?: number;
  /** Milliseconds between thread-state samples (default 5). */
  timelineIntervalMs?: number;
  /** Milliseconds the node has to answer the handshake and to take each block (default 60,000); then E_TIMEOUT. */
  ioTimeoutMs?: number;
}

/** Thread states at one moment (Vyukov-style profile). */
export interface TimelineSample {
  ms: number;
  reading: number;
  processing: number;
  sending: number;
  writing: number;
  blocked: number;
  queued: number;
}

export interface SchedulerReport {
  requested: string;
  used: string;
  reason: string;
  probe: { scheduler: string; bytesPerSecond: number }[];
}

export interface PlacementReport {
  reason: string;
  pinned: boolean;
  fallback?: string;
  diskCpus: string;
  netCpus: string;
  otherCpus: string;
  diskNode?: number;
  netNode?: number;
  threads: { name: string; tid: number; cpu: number; error?: string }[];
}

export interface FastPaths {
  sendfile: boolean;
  sendfileFallback?: string;
  mlock: boolean;
  mlockFallback?: string;
}

export interface SendSummary {
  bytes: number;
  files: number;
  dirs: number;
  symlinks: number;
  blocks: number;
  /** Wall time of the whole send, scan included. */
  seconds: number;
  scanSeconds: number;
  receiverSeconds: number;
  /** bytes / seconds. */
  bytesPerSecond: number;
  streams: number;
  perStreamBytes: number[];
  sendfileBlocks: number;
  sendfileBytes: number;
  packedBlocks: number;
  packedBytes: number;
  fastPaths: FastPaths;
  skipped: { path: string; reason: string }[];
  scheduler: SchedulerReport;
  placement: PlacementReport;
  timeline: TimelineSample[];
  digest: string;
}

function checkCount(name: string, v: number | undefined, min: number, max: number): void {
  if (v === undefined) return;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new LonghaulError('E_USAGE', `${name} must be an integer in ${min}..${max}, got ${v}`);
  }
}

/**
 * Sends `source` (a file or a directory) to the node at `target` (`HOST:PORT[/DEST]` or a
 * Target). A directory `src` arrives as `DEST/src`, a file `f` as `DEST/f`.
 */
export async function send(source: string, target: string | Target, options: SendOptions = {}): Promise<SendSummary> {
  const t = typeof target === 'string' ? parseTarget(target) : target;
  checkCount('streams', options.streams, 1, 256);
  checkCount('blockSize', options.blockSize, 4096, 64 << 20);
  checkCount('poolBuffers', options.poolBuffers, 1, 4096);
  checkCount('readers', options.readers, 1, 64);
  checkCount('processors', options.processors, 1, 256);
  checkCount('workers', options.workers, 1, 256);
  const { signal, onProgress } = options;
  if (signal?.aborted) throw new LonghaulError('E_CANCELLED', 'transfer cancelled before it started');
  const cancel = new native.BindingCancel();
  const onAbort = (): void => cancel.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  const progress = onProgress
    ? (p: import('./native.js').Binding.BindingProgress): void => {
        onProgress({ ...p, bytesPerSecond: p.seconds > 0 ? p.bytesDone / p.seconds : 0 });
      }
    : undefined;
  try {
    const s = await native.send(
      {
        source,
        address: formatAddress(t.host, t.port),
        dest: t.dest,
        streams: options.streams,
        blockSize: options.blockSize,
        poolBuffers: options.poolBuffers,
        readers: options.readers,
        progressIntervalMs: options.progressIntervalMs,
        scheduler: options.scheduler,
        digest: options.digest,
        coresIo: options.cores?.io,
        coresOther: options.cores?.other,
        pin: options.pin,
        processors: options.processors,
        workers: options.workers,
        timelineIntervalMs: options.timelineIntervalMs,
        ioTimeoutMs: options.ioTimeoutMs,
      },
      cancel,
      progress,
    );
    return {
      ...s,
      bytesPerSecond: s.seconds > 0 ? s.bytes / s.seconds : 0,
      fastPaths: {
        sendfile: s.fastPaths.sendfile,
        sendfileFallback: s.fastPaths.sendfileFallback ?? undefined,
        mlock: s.fastPaths.mlock,
        mlockFallback: s.fastPaths.mlockFallback ?? undefined,
      },
      placement: {
        ...s.placement,
        fallback: s.placement.fallback ?? undefined,
        diskNode: s.placement.diskNode ?? undefined,
        netNode: s.placement.netNode ?? undefined,
        threads: s.placement.threads.map((t) => ({ ...t, error: t.error ?? undefined })),
      },
    };
  } catch (err) {
    throw fromNative(err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

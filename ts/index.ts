// longhaul's public SDK: `serve` starts a storage node, `send` moves a file or a tree to one,
// `get` pulls one back, `copy` has one node push to another, `connect` opens a connection for
// readv, listing and stats. The work runs on the engine's own threads; these functions convert
// options, forward progress and cancellation, and turn engine errors into LonghaulError with a
// stable `code`.
import { cancellable, checkCount, progressAdapter, resolveToken, type AuthOptions, type TransferTotals } from './common.js';
import { native } from './native.js';
import type { Cores, PinMode } from './node.js';
import { formatAddress, parseTarget, type Target } from './target.js';

export { LonghaulError, exitCodeFor, fixFor, ERROR_CODES } from './errors.js';
export {
  resolveConfig,
  configJsonSchema,
  CONFIG_KEYS,
  CONFIG_FILE,
  type Config,
  type ConfigKey,
  type ResolvedConfig,
  type ResolveInput,
  type Source as ConfigSource,
} from './config.js';
export { parseSize, resolveToken, type AuthOptions, type Progress, type TransferTotals } from './common.js';
export {
  serve,
  type BandwidthLimit,
  type Cores,
  type NodeStats,
  type PinMode,
  type ServeOptions,
  type StorageNode,
  type StorageNodeEvents,
  type TransferInfo,
} from './node.js';
export {
  Client,
  connect,
  copy,
  get,
  ls,
  nodeStats,
  type ClientOptions,
  type GetOptions,
  type ListEntry,
  type ReceiveSummary,
  type Segment,
  type SegmentResult,
  type TransferOptions,
} from './client.js';
export { parseTarget, parseListen, formatAddress, type Target } from './target.js';
export { compareTrees, type TreeDifference } from './verify.js';

export type SchedulerName = 'pipelined' | 'adaptive' | 'auto';

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

export interface SendOptions extends AuthOptions {
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
  onProgress?: (p: import('./common.js').Progress) => void;
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

export interface SendSummary extends TransferTotals {
  scanSeconds: number;
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
  return cancellable(options.signal, async (cancel) => {
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
        token: resolveToken(options),
      },
      cancel,
      progressAdapter(options.onProgress),
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
  });
}
export { nodeRegistry, serveMetrics, type MetricsServer } from './metrics.js';

// longhaul's public SDK: `serve` starts a storage node, `send` moves a file or a tree to one,
// `get` pulls one back, `copy` has one node push to another, `connect` opens a connection for
// readv, listing and stats. The work runs on the engine's own threads; these functions convert
// options, forward progress and cancellation, and turn engine errors into LonghaulError with a
// stable `code`.
import {
  cancellable,
  checkVerify,
  parseSize,
  progressAdapter,
  rateOf,
  resolveToken,
  type AuthOptions,
  type TlsOptions,
  type TransferTotals,
  type VerifyMode,
} from './common.js';
import { checkCount, checkIn, LIMITS, RETRY } from './defaults.js';
import { native, type Binding } from './native.js';
import type { Cores, PinMode } from './node.js';
import { LonghaulError } from './errors.js';
import { formatAddress, parseTarget, type Target } from './target.js';
import { refineVerdict, type Verdict } from './verdict.js';

export { LonghaulError, exitCodeFor, fixFor, ERROR_CODES, type ErrorCode } from './errors.js';
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
export {
  parseSize,
  resolveToken,
  type AuthOptions,
  type Progress,
  type TlsOptions,
  type TransferTotals,
  type VerifyMode,
} from './common.js';
export {
  serve,
  type BandwidthLimit,
  type ConnectionRefused,
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
export { compareTrees, compareWithNode, type CompareOptions, type TreeDifference } from './verify.js';
export type { Verdict } from './verdict.js';

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

export interface SendOptions extends AuthOptions, TlsOptions {
  /**
   * Parallel TCP data streams: `auto` (default) starts with 2 and, while a push runs, opens more
   * (up to 16, or the node's maxStreams) while each step still raises the goodput, which only
   * streams held back by loss do (CUBIC on a lossy link); a number fixes the count.
   */
  streams?: number | 'auto';
  /** Block size in bytes (default 1 MiB; at most the node's limit). */
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
  /**
   * Pick up the node's journal of an earlier attempt at this same transfer and skip files it
   * already holds with the same size and mtime (default true); false sends every byte.
   */
  resume?: boolean;
  /**
   * Decide which files the node already holds by content rather than by size and mtime (rsync
   * `-c`; default false): both ends compute a BLAKE3 of every file that could be equal (the
   * node: those of the same size), and only those that differ are sent. Needs `resume` and a
   * node that knows it (else E_VERSION).
   */
  checksum?: boolean;
  /**
   * Keep every entry's numeric owner (rsync `--owner`; default false). A node running as root
   * sets it; any other names it as not kept (`ownerNotKept`). Files the node holds already
   * (unchanged) keep the owner they have.
   */
  owner?: boolean;
  /** Keep every entry's numeric group (rsync `--group`; default false), as `owner`. */
  group?: boolean;
  /**
   * Keep extended attributes (rsync `-X`; default false): `user.*` always, the other
   * namespaces (trusted, security, and ACLs as `system.posix_acl_*`) where the node runs as
   * root; at most 64 KiB of names and values an entry. What is not kept is named
   * (`xattrsNotKept`).
   */
  xattrs?: boolean;
  /**
   * `block` (default): an XXH3 of every block, checked on arrival. `full`: besides, a BLAKE3 of
   * every file, which the node checks on the file read back before it takes its final name
   * (costs a second read of every file at both ends: see docs/USAGE.md); files the node would
   * skip as unchanged are confirmed by their BLAKE3 too, and sent when they differ.
   */
  verify?: VerifyMode;
  /**
   * TCP congestion control of the data streams: `auto` (default) takes BBR where the kernel lets
   * this process use it, `system` keeps the host's default, a name (`cubic`, `bbr`, ...) asks for
   * that algorithm (E_USAGE where it cannot be had). On long lossy links it decides a factor of 10.
   */
  congestion?: string;
  /**
   * After a broken connection, a timeout, a bad block or a busy node, send again (resuming) this
   * many times (default 3). A node that cannot be reached at all on the first attempt is not retried.
   */
  retries?: number;
  /** Milliseconds before the first retry (default 1,000), doubling each time up to 30 s. */
  retryDelayMs?: number;
  /** Called before each retry with the error that ended the attempt. */
  onRetry?: (r: RetryEvent) => void;
  /**
   * Filter rules in order, each `- PATTERN` (leave out) or `+ PATTERN` (keep), gitignore
   * patterns matched below the source (`*.tmp`, `/build/`, `cache/`); the first rule that
   * matches an entry decides, as rsync's do. An excluded directory is not walked.
   */
  filters?: string[];
  /** Patterns to leave out: shorthand for `- PATTERN` rules after `filters`. */
  exclude?: string[];
  /** Bytes per second for all streams together (`200M`, or a number); default no limit. */
  rate?: number | string;
  /**
   * Mirror (rsync `-a --delete SRC DEST/`): once the transfer verified, the node deletes what
   * `DEST/SRC` holds and the source does not (files, symlinks as links, directories, deepest
   * first), within it only; what the filter rules leave out is kept. A source directory that
   * lists nothing is refused (E_USAGE) unless `force`; a file source too. Needs a node that knows
   * it (else E_VERSION). The summary's `deleted` says what went.
   */
  delete?: boolean;
  /** With `delete`: proceed though the source lists nothing (its copy on the node is emptied). */
  force?: boolean;
}

/** What `delete` removed (or, in a plan, would remove). */
export interface Deleted {
  /** Regular files and symlinks. */
  files: number;
  dirs: number;
  /** The regular files' sizes. */
  bytes: number;
  /** The first 1,000 paths below the node's DEST, deepest first; a directory's ends with `/`. */
  paths: string[];
}

/**
 * A dry run's plan (`sendPlan`): what `send` with the same options would do on the node, from the
 * node's own decisions. Files are regular files and symlinks; each list holds its first 1,000
 * paths below the node's DEST.
 */
export interface SendPlan {
  /** Files the node does not hold: they would be sent. */
  newFiles: number;
  newBytes: number;
  newPaths: string[];
  /** Files the node holds with other contents, size or mtime (by content with `checksum`): sent again. */
  changedFiles: number;
  changedBytes: number;
  changedPaths: string[];
  /** Files the node holds already: not sent. */
  unchangedFiles: number;
  unchangedBytes: number;
  /** With `delete`, what would be deleted; null without. */
  deleted: Deleted | null;
  /** The source as scanned. */
  bytes: number;
  files: number;
  dirs: number;
  symlinks: number;
  excluded: number;
  skipped: { path: string; reason: string }[];
  seconds: number;
  scanSeconds: number;
  roundTrips: number;
}

export interface RetryEvent {
  /** The attempt that failed (1 for the first). */
  attempt: number;
  code: string;
  message: string;
  /** Milliseconds until the next attempt. */
  delayMs: number;
}

/**
 * Errors after which another attempt can succeed: the connection, the node's load, a damaged block.
 * Never E_PANIC (a bug, which would panic again) nor E_SOURCE_CHANGED (the source needs a rest).
 */
const RETRIABLE = new Set(['E_NET', 'E_TIMEOUT', 'E_PROTOCOL', 'E_CHECKSUM', 'E_BUSY', 'E_CONNECT']);

/** Thread states at one moment (Vyukov-style profile). */
export interface TimelineSample {
  ms: number;
  reading: number;
  processing: number;
  sending: number;
  writing: number;
  /** All blocked threads: the sum of the five `blocked*` below. */
  blocked: number;
  /** Blocked on the buffer pool: no free buffer (every one queued or in flight). */
  blockedPool: number;
  /** Blocked on a full queue between stages: a later stage is the slower. */
  blockedQueue: number;
  /** Blocked on a socket whose send buffer is full: the network or the node is the slower. */
  blockedSocket: number;
  /** Blocked on a bandwidth limit (a node's `--rate` when it sends). */
  blockedRate: number;
  /** Waiting for a block from the disk reads: reading is the slower. */
  blockedInput: number;
  queued: number;
}

/**
 * The receiving node's side of a send, from its summary: its disk writers and what its threads
 * waited for. Seconds are summed over the threads. Absent when the node is older than this field.
 */
export interface ReceiverDisk {
  /** Disk-writer threads. */
  writers: number;
  bytesWritten: number;
  /** In pwrite. */
  writeSeconds: number;
  /** In fsync or syncfs (`serve --fsync file` or `end`). */
  fsyncSeconds: number;
  /** Writers handling a block (writes, file creation, renames, the journal). */
  writerBusySeconds: number;
  /** Writers waiting for a block: the network was the slower. */
  writerIdleSeconds: number;
  /** Network receivers waiting for room in the write queue: the disk was the slower. */
  queueFullSeconds: number;
  /** Network receivers waiting for a free buffer. */
  poolWaitSeconds: number;
  /** Network receivers held by the node's bandwidth limit (`serve --rate`). */
  rateWaitSeconds: number;
}

/** One data stream's TCP figures at the end of a send (TCP_INFO): times in µs, rates in bytes/s. */
export interface StreamNet {
  rttUs: number;
  minRttUs: number;
  cwnd: number;
  mss: number;
  retransSegs: number;
  bytesSent: number;
  bytesRetrans: number;
  deliveryRate: number;
  busyUs: number;
  rwndLimitedUs: number;
  sndbufLimitedUs: number;
}

/**
 * One data stream's TCP figures at a moment of a send (`SendSummary.networkTimeline`): RTT in
 * µs, window in segments, delivery rate in bytes/s; resent segments, bytes sent and busy times
 * are totals so far.
 */
export interface NetSample {
  /** Milliseconds since the transfer started. */
  ms: number;
  stream: number;
  rttUs: number;
  cwnd: number;
  retransSegs: number;
  bytesSent: number;
  deliveryRate: number;
  busyUs: number;
  rwndLimitedUs: number;
  sndbufLimitedUs: number;
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

/** Files the node found already at the destination (see `SendSummary.unchanged`). */
export interface Unchanged {
  files: number;
  bytes: number;
  by: 'size+mtime' | 'BLAKE3' | 'size+mtime+BLAKE3';
}

export interface SendSummary extends TransferTotals {
  scanSeconds: number;
  /** Seconds from the start of the send (as `seconds`, the scan included) to the first data byte handed to a data socket; absent when nothing was sent (everything resumed or unchanged). */
  firstByteSeconds?: number;
  streams: number;
  /** With `streams: 'auto'`: how the count was chosen, e.g. `auto: goodput +95%, +4%, stopped: the last step did not pay`; absent for a fixed count. */
  streamsReason?: string;
  perStreamBytes: number[];
  sendfileBlocks: number;
  sendfileBytes: number;
  packedBlocks: number;
  packedBytes: number;
  fastPaths: FastPaths;
  skipped: { path: string; reason: string }[];
  /** Entries the filter rules left out (a directory left out counts once: it was not walked). */
  excluded: number;
  /** Names of multiply-linked files sent as files of their own (0 unless the node cannot make hard links). */
  hardLinks: number;
  /** Files with holes: sent and written with their holes as zeros (the sparse layout is not kept yet). */
  sparseFiles: number;
  scheduler: SchedulerReport;
  placement: PlacementReport;
  timeline: TimelineSample[];
  /** The node's disk writers and their waits; undefined from a node that does not report them. */
  receiver?: ReceiverDisk;
  digest: string;
  /** Blocks and bytes the node already held (an earlier attempt's, or files already there) and so were not sent. */
  resumedBlocks: number;
  resumedBytes: number;
  /** Entries whose owner or group (`owner`, `group`) was not kept, and why (empty when none). */
  ownerNotKept: number;
  ownerNotKeptWhy: string;
  /** Entries whose extended attributes (`xattrs`) were not all kept, and why (empty when none). */
  xattrsNotKept: number;
  xattrsNotKeptWhy: string;
  /** Bytes of blocks wholly in holes of sparse files: neither sent nor written (the node leaves them as holes). */
  holeBytes: number;
  /**
   * Blocks the end-game sent a second time, on an idle stream while the first copy was slow
   * on another (the node keeps the first to arrive), and their bytes: in neither
   * `perStreamBytes` (a block counts once, on the stream whose copy was written first) nor
   * `bytes`. 0 from a node too old to take them.
   */
  endgameBlocks: number;
  endgameBytes: number;
  /**
   * Non-empty files the node found already there and so did not receive, and how it decided:
   * `size+mtime` (the default), `BLAKE3` (`checksum`), `size+mtime+BLAKE3` (`verify: full`:
   * each confirmed by its digest). Null from a node too old to say, or with `resume: false`.
   */
  unchanged: Unchanged | null;
  /** The congestion control the data streams ran (`bbr`, `cubic`, ...). */
  congestion: string;
  /** Why not BBR, where `congestion: auto` could not have it. */
  congestionNote?: string;
  /** Control round trips of the session (handshake, manifest exchange, end): the same for one file or a million. */
  roundTrips: number;
  /** The kernel's TCP_INFO of each data stream at the end (empty under TLS). */
  network: StreamNet[];
  /** The same over the transfer: every stream sampled together every 20 ms or more (at most ~16k samples; empty under TLS). */
  networkTimeline: NetSample[];
  /** What limited the send, with the evidence (`limited by:` in the CLI's summary). */
  verdict: Verdict;
  /** With `delete`: what the node deleted once the transfer verified; null without. */
  deleted: Deleted | null;
  /** Attempts it took (1 when nothing failed), and the error that ended each failed one. */
  attempts: number;
  retried: { code: string; message: string }[];
}

/**
 * Sends `source` (a file or a directory) to the node at `target` (`HOST:PORT[/DEST]` or a
 * Target). A directory `src` arrives as `DEST/src`, a file `f` as `DEST/f`.
 */
export async function send(source: string, target: string | Target, options: SendOptions = {}): Promise<SendSummary> {
  const t = typeof target === 'string' ? parseTarget(target) : target;
  if (options.streams !== 'auto') checkIn('streams', options.streams, LIMITS.streams);
  checkIn('blockSize', options.blockSize, LIMITS.blockSize);
  checkIn('poolBuffers', options.poolBuffers, LIMITS.poolBuffers);
  checkIn('readers', options.readers, LIMITS.readers);
  checkIn('processors', options.processors, LIMITS.processors);
  checkIn('workers', options.workers, LIMITS.workers);
  checkCount('retries', options.retries, 0, RETRY.maxRetries);
  checkCount('retryDelayMs', options.retryDelayMs, 0, RETRY.maxDelayOptionMs);
  checkVerify(options.verify);
  // Parsed once, before anything connects: the rate is the engine's limit and the verdict's
  // yardstick; the filter rules are checked here, not on every attempt.
  const rate = options.rate === undefined ? undefined : parseSize(options.rate, 'rate');
  const filters = filterRules(options);
  const retries = options.retries ?? RETRY.retries;
  const retried: { code: string; message: string }[] = [];
  let reached = false;
  for (let attempt = 1; ; attempt++) {
    try {
      const s = await sendOnce(source, t, options, { rate, filters });
      const verdict = await refineVerdict(s.verdict, s.bytesPerSecond, t, options, rate);
      return { ...s, verdict, attempts: attempt, retried };
    } catch (err) {
      const e = err as LonghaulError;
      // A node never reached is a wrong address or a node that is down: say so at once. Any
      // other failure means an attempt reached it, and a node restarting is worth waiting for.
      const retriable = RETRIABLE.has(e.code) && (e.code !== 'E_CONNECT' || reached);
      reached ||= e.code !== 'E_CONNECT';
      if (!retriable || attempt > retries || options.signal?.aborted) throw e;
      // A node whose memory is spoken for says how long to wait: never less than that.
      const delayMs = Math.max(
        Math.min((options.retryDelayMs ?? RETRY.delayMs) * 2 ** (attempt - 1), RETRY.maxDelayMs),
        e.retryAfterMs ?? 0,
      );
      retried.push({ code: e.code, message: e.message });
      options.onRetry?.({ attempt, code: e.code, message: e.message, delayMs });
      await sleep(delayMs, options.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      done();
      reject(new LonghaulError('E_CANCELLED', 'transfer cancelled while waiting to retry', { cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      done();
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A dry run of `send` (rsync `--dry-run`): what sending `source` to `target` with these options
 * would send (new), send again (changed), leave (unchanged) and, with `delete`, delete, decided by
 * the node as the transfer itself would; nothing is sent or written at either end, nothing read
 * but metadata (and with `checksum`, the files' digests). Needs a node that knows it (else E_VERSION).
 */
export async function sendPlan(source: string, target: string | Target, options: SendOptions = {}): Promise<SendPlan> {
  const t = typeof target === 'string' ? parseTarget(target) : target;
  checkVerify(options.verify);
  const filters = filterRules(options);
  return cancellable(options.signal, async (cancel) => {
    const p = await native.sendPlan(bindingOptions(source, t, options, { filters }), cancel);
    return { ...p, deleted: p.deleted ?? null };
  });
}

/** The binding's options for a send from the SDK's. */
function bindingOptions(
  source: string,
  t: Target,
  options: SendOptions,
  { rate, filters }: { rate?: number; filters?: string[] },
): Binding.BindingSendOptions {
  return {
    source,
    address: formatAddress(t.host, t.port),
    dest: t.dest,
    streams: options.streams === 'auto' ? undefined : options.streams,
    streamsAuto: options.streams === undefined || options.streams === 'auto',
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
    tlsPin: options.tlsPin,
    tlsCa: options.tlsCa,
    filters,
    rate,
    resume: options.resume,
    checksum: options.checksum,
    owner: options.owner,
    group: options.group,
    xattrs: options.xattrs,
    verify: options.verify,
    congestion: options.congestion,
    delete: options.delete,
    force: options.force,
  };
}

async function sendOnce(
  source: string,
  t: Target,
  options: SendOptions,
  { rate, filters }: { rate?: number; filters?: string[] },
): Promise<Omit<SendSummary, 'attempts' | 'retried'>> {
  return cancellable(options.signal, async (cancel) => {
    const s = await native.send(bindingOptions(source, t, options, { rate, filters }), cancel, progressAdapter(options.onProgress));
    return {
      ...s,
      congestionNote: s.congestionNote ?? undefined,
      streamsReason: s.streamsReason ?? undefined,
      firstByteSeconds: s.firstByteSeconds ?? undefined,
      unchanged: s.unchanged ? { ...s.unchanged, by: s.unchanged.by as Unchanged['by'] } : null,
      receiver: s.receiver ?? undefined,
      deleted: s.deleted ?? null,
      bytesMoved: s.bytes - s.resumedBytes - s.holeBytes,
      bytesAlready: s.resumedBytes,
      bytesPerSecond: rateOf(s.bytes - s.resumedBytes - s.holeBytes, s.seconds),
      verify: s.verify as VerifyMode,
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
export { bench, BENCH_SIZE, type BenchCpu, type BenchOptions, type BenchSummary } from './bench.js';
export { nodeRegistry, serveMetrics, type MetricsServer } from './metrics.js';

/** A send's filter rules, checked: `filters` then `exclude` as `- PATTERN` rules. */
function filterRules(options: SendOptions): string[] | undefined {
  const rules = [...(options.filters ?? []), ...(options.exclude ?? []).map((p) => `- ${p}`)];
  for (const r of rules) {
    if (!/^[-+] \S/.test(r)) throw new LonghaulError('E_USAGE', `a filter rule is "- PATTERN" or "+ PATTERN", got ${JSON.stringify(r)}`);
  }
  return rules.length > 0 ? rules : undefined;
}

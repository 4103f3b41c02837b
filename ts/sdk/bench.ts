// `bench`: generated data sent over a normal session to a node that checks and discards it
// (issue 31, item 7): the engine and the path measured apart from file systems, as GridFTP's
// and FDT's memory-to-memory runs do. Everything but the disks is the same as a send: the
// handshake and token, TLS, the streams, congestion control, rate limits, the scheduler, the
// blocks' XXH3 (and BLAKE3 with `digest: 'blake3'`) computed by the client and checked by the
// node, progress and the verdict.
import {
  cancellable,
  parseSize,
  progressAdapter,
  rateOf,
  resolveToken,
  type AuthOptions,
  type Progress,
  type TlsOptions,
} from './common.js';
import { checkIn, DEFAULTS, LIMITS } from './defaults.js';
import { LonghaulError } from './errors.js';
import { native } from './native.js';
import { formatAddress, parseTarget, type Target } from './target.js';
import { refineVerdict, type Verdict } from './verdict.js';

/** The size a bench sends when none is given: 10 GiB, long enough for TCP to leave slow start behind. */
export const BENCH_SIZE = 10 * 2 ** 30;

const GIB = 2 ** 30;

export interface BenchOptions extends AuthOptions, TlsOptions {
  /** Bytes to send (`10G`, `512M`, or a number; default 10 GiB). */
  size?: number | string;
  /** Parallel TCP data streams (default 2, as `send`). */
  streams?: number;
  /** Block size in bytes (default 1 MiB; at most the node's limit). */
  blockSize?: number;
  /** Who runs the blocks, as `send`'s `scheduler`. */
  scheduler?: 'pipelined' | 'adaptive' | 'auto';
  /** Processing besides XXH3: `blake3` adds a BLAKE3 of every block, checked by the node (default `none`). */
  digest?: 'none' | 'blake3';
  /**
   * `block` (default): an XXH3 of every block, made by the client and checked by the node, as in
   * every transfer. `none`: no checksum at either end, to measure the path without the hashing
   * (a bench's alone: files are always checked).
   */
  verify?: 'block' | 'none';
  /** TCP congestion control of the data streams, as `send`'s `congestion`. */
  congestion?: string;
  /** Bytes per second for all streams together (`200M`, or a number); default no limit. */
  rate?: number | string;
  /** Milliseconds the node has to answer the handshake and to take each block (default 60,000). */
  ioTimeoutMs?: number;
  /** Cancels the bench; the promise rejects with code E_CANCELLED. */
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Milliseconds between progress events (default 100). */
  progressIntervalMs?: number;
}

/** What one end spent: CPU seconds (user and system), and per GiB sent. */
export interface BenchCpu {
  seconds: number;
  perGiB: number;
}

export interface BenchSummary {
  /** Bytes sent, checked and discarded: the size asked for. */
  bytes: number;
  /** Wall time from the connection to the node's summary. */
  seconds: number;
  bytesPerSecond: number;
  /** The same rate in Gbit/s (10^9 bits per second), the unit iperf3 reports. */
  gbitPerSecond: number;
  streams: number;
  perStreamBytes: number[];
  blockSize: number;
  blocks: number;
  /** Besides the XXH3 of every block: `none` or `blake3`. */
  digest: string;
  /** `block` (every block's XXH3 made and checked) or `none` (no checksum at either end). */
  verify: 'block' | 'none';
  congestion: string;
  scheduler: string;
  /**
   * This process's CPU (getrusage via `process.cpuUsage`: the engine's threads and Node's) over
   * the bench: making no data, hashing and sending every block.
   */
  clientCpu: BenchCpu;
  /**
   * The node's CPU for the session, counted by the threads that did its work (receiving and
   * checking every block, the control connection; under TLS not its relay threads, which
   * decrypt); null from a node that does not report it.
   */
  nodeCpu: BenchCpu | null;
  /** Control round trips of the session. */
  roundTrips: number;
  /** What limited the run, with the evidence, as `send`'s verdict. */
  verdict: Verdict;
}

/**
 * Sends `options.size` bytes of generated data to the node at `target` (`HOST:PORT`), which
 * checks every block and discards it: no disk read here, no disk write there, nothing stored.
 * A node started with `bench: false` refuses with E_DENIED; one too old to know benches with
 * E_VERSION.
 */
export async function bench(target: string | Target, options: BenchOptions = {}): Promise<BenchSummary> {
  const t = typeof target === 'string' ? parseTarget(target) : target;
  if (t.dest)
    throw new LonghaulError(
      'E_USAGE',
      `a bench goes to a node, not into a path: give HOST:PORT, not ${formatAddress(t.host, t.port)}/${t.dest}`,
    );
  checkIn('streams', options.streams, LIMITS.streams);
  checkIn('blockSize', options.blockSize, LIMITS.blockSize);
  if (options.verify !== undefined && options.verify !== 'block' && options.verify !== 'none')
    throw new LonghaulError('E_USAGE', `verify must be block or none for a bench, not ${JSON.stringify(options.verify)}`);
  if (options.verify === 'none' && options.digest === 'blake3')
    throw new LonghaulError('E_USAGE', 'a bench with verify none makes no digest: drop digest blake3');
  const size = parseSize(options.size ?? BENCH_SIZE, 'size');
  if (size < 1) throw new LonghaulError('E_USAGE', 'size must be at least 1 byte');
  const rate = options.rate === undefined ? undefined : parseSize(options.rate, 'rate');
  const cpuBefore = process.cpuUsage();
  const s = await cancellable(options.signal, (cancel) =>
    native.bench(
      {
        source: '',
        dest: '',
        address: formatAddress(t.host, t.port),
        streams: options.streams,
        blockSize: options.blockSize,
        scheduler: options.scheduler,
        digest: options.digest,
        verify: options.verify,
        congestion: options.congestion,
        rate,
        resume: false,
        ioTimeoutMs: options.ioTimeoutMs,
        progressIntervalMs: options.progressIntervalMs,
        token: resolveToken(options),
        tlsPin: options.tlsPin,
        tlsCa: options.tlsCa,
      },
      size,
      cancel,
      progressAdapter(options.onProgress),
    ),
  );
  const used = process.cpuUsage(cpuBefore);
  const clientSeconds = (used.user + used.system) / 1e6;
  const bytesPerSecond = rateOf(s.bytes, s.seconds);
  const gib = s.bytes / GIB;
  const verdict = await refineVerdict(s.verdict, bytesPerSecond, t, options, rate);
  return {
    bytes: s.bytes,
    seconds: s.seconds,
    bytesPerSecond,
    gbitPerSecond: (bytesPerSecond * 8) / 1e9,
    streams: s.streams,
    perStreamBytes: s.perStreamBytes,
    blockSize: options.blockSize ?? DEFAULTS.send.blockSize,
    blocks: s.blocks,
    digest: s.digest,
    verify: s.verify === 'none' ? 'none' : 'block',
    congestion: s.congestion,
    scheduler: s.scheduler.used,
    clientCpu: { seconds: clientSeconds, perGiB: clientSeconds / gib },
    nodeCpu:
      s.receiverCpuSeconds === null || s.receiverCpuSeconds === undefined
        ? null
        : { seconds: s.receiverCpuSeconds, perGiB: s.receiverCpuSeconds / gib },
    roundTrips: s.roundTrips,
    verdict,
  };
}

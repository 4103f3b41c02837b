// The client side of a node's other services: pull (`get`), third-party `copy`, and a
// connection for repeated requests (`connect`: readv, read, list, stats).
import {
  cancellable,
  checkVerify,
  parseSize,
  progressAdapter,
  rateOf,
  resolveToken,
  type AuthOptions,
  type TlsOptions,
  type Progress,
  type TransferTotals,
  type VerifyMode,
} from './common.js';
import { fromNative, LonghaulError, type ErrorCode } from './errors.js';
import { checkCount, checkIn, LIMITS } from './defaults.js';
import { native, type Binding } from './native.js';
import type { NodeStats } from './node.js';
import { formatAddress, parseTarget, type Target } from './target.js';

export interface ClientOptions extends AuthOptions, TlsOptions {
  /** Milliseconds for connecting and for each reply (default 60,000). */
  timeoutMs?: number;
}

export interface Segment {
  /** Relative to the node's root. */
  path: string;
  offset: number;
  length: number;
}

/** One segment's outcome: its bytes (short at the end of the file; a view of one buffer shared by the request), or its error. */
export interface SegmentResult {
  data?: Buffer;
  error?: LonghaulError;
}

export interface ListEntry {
  name: string;
  kind: 'dir' | 'file' | 'symlink' | 'other';
  mode: number;
  size: number;
  mtime: Date;
  /** Nanoseconds since the epoch (as a float: exact to the microsecond). */
  mtimeNs: number;
}

function targetOf(t: string | Target): Target {
  return typeof t === 'string' ? parseTarget(t) : t;
}

function address(t: Target): string {
  return formatAddress(t.host, t.port);
}

/**
 * A connection to a node for requests that follow one another; one at a time, in order. After
 * `close()` every call rejects (or throws) with E_CLOSED, a request already queued too.
 */
export class Client {
  private closed = false;

  /** @internal */
  constructor(private readonly c: Binding.BindingClient) {}

  /** E_CLOSED once closed: the same answer for every call, before any argument is looked at. */
  private open(): Binding.BindingClient {
    if (this.closed) throw new LonghaulError('E_CLOSED', 'the client is closed: connect() again for a new connection');
    return this.c;
  }

  /** The node's readv limits (segments per request, bytes per segment). */
  get limits(): { maxReadvSegments: number; maxReadvSegment: number } {
    const c = this.open();
    return { maxReadvSegments: c.maxReadvSegments, maxReadvSegment: c.maxReadvSegment };
  }

  /** Each segment's bytes or error, in one request and one response. */
  async readvSettled(segments: Segment[]): Promise<SegmentResult[]> {
    const c = this.open();
    for (const s of segments) {
      checkCount('offset', s.offset, 0, Number.MAX_SAFE_INTEGER);
      checkCount('length', s.length, 0, 2 ** 32 - 1);
    }
    let r: Binding.BindingReadv;
    try {
      r = await c.readv(segments);
    } catch (err) {
      throw fromNative(err);
    }
    // One buffer from the engine; each segment is a view of it.
    let at = 0;
    return r.lengths.map((len, i) => {
      const data = r.data.subarray(at, at + len);
      at += len;
      const code = r.codes[i]!;
      return code ? { error: new LonghaulError(code as ErrorCode, `segment ${i} (${segments[i]!.path}): ${code}`) } : { data };
    });
  }

  /** Every segment's bytes, in one request; rejects with the first segment's error if any failed. */
  async readv(segments: Segment[]): Promise<Buffer[]> {
    const r = await this.readvSettled(segments);
    const bad = r.findIndex((x) => x.error);
    if (bad >= 0) throw new LonghaulError(r[bad]!.error!.code, `segment ${bad}: ${r[bad]!.error!.message}`);
    return r.map((x) => x.data!);
  }

  async read(path: string, offset: number, length: number): Promise<Buffer> {
    return (await this.readv([{ path, offset, length }]))[0]!;
  }

  /** A directory's entries (sorted by name), or the one entry of a file. */
  async list(path = ''): Promise<ListEntry[]> {
    const c = this.open();
    try {
      const entries = await c.list(path.replace(/^\/+/, '').replace(/\/+$/, ''));
      return entries.map((e) => ({ ...e, kind: e.kind as ListEntry['kind'], mtime: new Date(e.mtimeNs / 1e6) }));
    } catch (err) {
      throw fromNative(err);
    }
  }

  async stats(): Promise<NodeStats> {
    const c = this.open();
    try {
      return JSON.parse(await c.stats()) as NodeStats;
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** Closes the connection. Idempotent. */
  close(): void {
    this.closed = true;
    this.c.close();
  }
}

/** Connects to a node (`HOST:PORT`) and authenticates. */
export async function connect(url: string | Target, options: ClientOptions = {}): Promise<Client> {
  const t = targetOf(url);
  try {
    return new Client(
      await native.connect({
        address: address(t),
        token: resolveToken(options),
        tlsPin: options.tlsPin,
        tlsCa: options.tlsCa,
        timeoutMs: options.timeoutMs,
      }),
    );
  } catch (err) {
    throw fromNative(err);
  }
}

/** Lists `HOST:PORT/PATH`. */
export async function ls(url: string | Target, options: ClientOptions = {}): Promise<ListEntry[]> {
  const t = targetOf(url);
  const c = await connect(t, options);
  try {
    return await c.list(t.dest);
  } finally {
    c.close();
  }
}

/** The statistics of the node at `HOST:PORT`. */
export async function nodeStats(url: string | Target, options: ClientOptions = {}): Promise<NodeStats> {
  const c = await connect(url, options);
  try {
    return await c.stats();
  } finally {
    c.close();
  }
}

export interface TransferOptions extends ClientOptions {
  /** Parallel TCP data streams (default 2). */
  streams?: number;
  /** Block size in bytes (default 1 MiB). */
  blockSize?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Milliseconds between progress events (default 100). */
  progressIntervalMs?: number;
  /** `full`: every file's BLAKE3 is checked on the file read back at the receiver (default `block`). */
  verify?: VerifyMode;
}

export interface GetOptions extends TransferOptions {
  /** Disk-writer threads (default 4). */
  writers?: number;
  /**
   * Keep a journal under `dest/.longhaul` and let the next pull of the same path fetch only
   * what is missing: blocks an interrupted pull wrote and checked, and files already there with
   * the same size and mtime (default true; false fetches everything).
   */
  resume?: boolean;
  /**
   * Give pulled files and directories the setuid and setgid bits the node's index asks for
   * (default false: they are cleared, so a node cannot make set-id programs on this side).
   */
  keepSetid?: boolean;
  /** Bytes per second for all streams together (`200M`, or a number); default no limit. */
  rate?: number | string;
  /**
   * Decide which files `dest` holds already by content: the node sends the BLAKE3 of its files
   * while this side hashes its own of the same size, and only those that differ travel
   * (default false: size and mtime decide). Needs `resume` (the default).
   */
  checksum?: boolean;
  /**
   * Keep the node's numeric owner of every entry, set when this side runs as root; otherwise
   * named in `ownerNotKept` (default false: files are this side's user's, as rsync without -o).
   */
  owner?: boolean;
  /** Keep the node's numeric group of every entry, as `owner`. */
  group?: boolean;
  /**
   * Keep extended attributes: user.* always, the others (ACLs among them) when this side runs
   * as root, file capabilities only with `keepSetid`; what is not kept is named (`xattrsNotKept`).
   */
  xattrs?: boolean;
}

/** What the receiving side reported (for a copy: the receiving node). */
export interface ReceiveSummary extends TransferTotals {
  /** A pull's entries whose owner or group (`owner`, `group`) was not kept here, and why (empty when none; 0 for a copy). */
  ownerNotKept: number;
  ownerNotKeptWhy: string;
  /** A pull's entries with an extended attribute (`xattrs`) not kept here, and why (empty when none; 0 for a copy). */
  xattrsNotKept: number;
  xattrsNotKeptWhy: string;
}

function summary(s: Binding.BindingReceived, verify: VerifyMode | undefined): ReceiveSummary {
  const { bytesTotal, ...rest } = s;
  return {
    ...rest,
    bytes: bytesTotal,
    bytesMoved: s.bytes,
    bytesAlready: Math.max(0, bytesTotal - s.bytes),
    bytesPerSecond: rateOf(s.bytes, s.seconds),
    verify: verify ?? 'block',
  };
}

function checkTransfer(o: TransferOptions): void {
  checkIn('streams', o.streams, LIMITS.streams);
  checkIn('blockSize', o.blockSize, LIMITS.blockSize);
  checkVerify(o.verify);
}

/**
 * Pulls `HOST:PORT/PATH` into the local directory `dest`: a directory `p` arrives as
 * `dest/p`, a file `f` as `dest/f`. The node sends with the same engine as `send`.
 */
export async function get(source: string | Target, dest: string, options: GetOptions = {}): Promise<ReceiveSummary> {
  const t = targetOf(source);
  checkTransfer(options);
  checkIn('writers', options.writers, LIMITS.writers);
  if (t.dest === '') throw new LonghaulError('E_USAGE', 'name what to pull: HOST:PORT/PATH');
  return cancellable(options.signal, async (cancel) =>
    summary(
      await native.get(
        {
          address: address(t),
          path: t.dest,
          dest,
          streams: options.streams,
          blockSize: options.blockSize,
          writers: options.writers,
          resume: options.resume,
          keepSetid: options.keepSetid,
          rate: options.rate === undefined ? undefined : parseSize(options.rate, 'rate'),
          checksum: options.checksum,
          owner: options.owner,
          group: options.group,
          xattrs: options.xattrs,
          token: resolveToken(options),
          tlsPin: options.tlsPin,
          tlsCa: options.tlsCa,
          timeoutMs: options.timeoutMs,
          progressIntervalMs: options.progressIntervalMs,
          verify: options.verify,
        },
        cancel,
        progressAdapter(options.onProgress),
      ),
      options.verify,
    ),
  );
}

/**
 * Third-party copy: asks the node at `from` (`HOST:PORT/SRC`) to push SRC to the node at `to`
 * (`HOST:PORT/DEST`, an address `from` can reach). The bytes go from node to node; this side
 * sees progress and the receiving node's summary. Both nodes must share the token.
 */
export async function copy(from: string | Target, to: string | Target, options: TransferOptions = {}): Promise<ReceiveSummary> {
  const a = targetOf(from);
  const b = targetOf(to);
  checkTransfer(options);
  if (a.dest === '') throw new LonghaulError('E_USAGE', 'name what to copy: HOST:PORT/SRC');
  return cancellable(options.signal, async (cancel) =>
    summary(
      await native.copy(
        {
          from: address(a),
          src: a.dest,
          to: address(b),
          dest: b.dest,
          streams: options.streams,
          blockSize: options.blockSize,
          token: resolveToken(options),
          tlsPin: options.tlsPin,
          tlsCa: options.tlsCa,
          timeoutMs: options.timeoutMs,
          progressIntervalMs: options.progressIntervalMs,
          verify: options.verify,
        },
        cancel,
        progressAdapter(options.onProgress),
      ),
      options.verify,
    ),
  );
}

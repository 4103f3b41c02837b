// The storage node: `serve()` starts one on the engine's threads and returns a StorageNode
// with its statistics, its table of transfers and events for them.
import { EventEmitter } from 'node:events';

import { parseSize, resolveToken, type AuthOptions } from './common.js';
import { fromNative, LonghaulError } from './errors.js';
import { native, type Binding } from './native.js';
import { formatAddress } from './target.js';

/** CPU lists in the kernel's form, e.g. `{ io: '2-7', other: '0-1,8-15' }`. */
export interface Cores {
  io: string;
  other?: string;
}

/** `auto` pins threads on machines of several NUMA nodes, or when cores are set. */
export type PinMode = 'auto' | 'always' | 'never';

export interface ServeOptions extends AuthOptions {
  /** Directory the node stores into; created if missing. */
  root: string;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: a free one; read it back from `address.port`). */
  port?: number;
  /**
   * `false` serves without authentication, on a loopback address only unless `openRemote`.
   * Otherwise (the default) a token is required: `token`, `tokenFile` or LONGHAUL_TOKEN.
   */
  auth?: boolean;
  /** Serve without authentication on a non-loopback address (only with `auth: false`). */
  openRemote?: boolean;
  /** Bytes the node may store under its root (`500G`); transfers that do not fit get E_CAPACITY. */
  capacity?: number | string;
  /** Recount stored bytes by walking the root instead of trusting the saved account. */
  rescan?: boolean;
  /** Bytes per second for all transfers together (`1G`). */
  rate?: number | string;
  /** Bytes per second per peer address, shared by all of its streams (`{ '10.0.0.7': '200M' }`). */
  peerRates?: Record<string, number | string>;
  /** Transfers at once (push, pull, copy; default 32); more get E_BUSY. */
  maxTransfers?: number;
  /**
   * Connections open at once, of every kind and stage (default 4,096; lowered to what the
   * descriptor limit allows). Past it a new connection closes the oldest one still in its
   * handshake, or gets E_BUSY.
   */
  maxConnections?: number;
  /** Connections open at once from one IP address (default 256); more get E_BUSY. */
  maxPerPeer?: number;
  /** Buffers in the node's pool, shared by all pushes (default 16 x 4 MiB). */
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
  /** Milliseconds between polls of the transfer table for events (default 250). */
  eventIntervalMs?: number;
  /**
   * Milliseconds the temporary files a failed push keeps for its resume stay after its last
   * block (default 86,400,000: 24 h). They count as stored until then; then the node removes
   * them with the push's journal.
   */
  resumeTtlMs?: number;
  /**
   * When received files are made durable: `none` (default: the kernel writes back, as with cp,
   * rsync and GridFTP; the resume journal covers a crash), `file` (fsync each file before its
   * rename) or `end` (one syncfs before the transfer is reported complete).
   */
  fsync?: 'none' | 'file' | 'end';
  /**
   * TCP congestion control of every connection the node accepts (it sends a pull's blocks and
   * READV answers on them) and of a copy's streams: `auto` (default: BBR where the kernel
   * allows), `system` (the host's default) or a name such as `cubic`.
   */
  congestion?: string;
  /**
   * Give pushed files and directories the setuid and setgid bits their sender's index asks for.
   * Off by default: a token lets a client write beneath the root, not make programs that run as
   * the node's user; the bits are cleared (the sticky bit is kept).
   */
  keepSetid?: boolean;
  /**
   * Accept bench sessions (`longhaul bench`: generated data whose blocks are checked and thrown
   * away; nothing is stored or counted against the capacity). Default true: a bench costs the node
   * what a push of the same bytes costs, minus the disk. False refuses them with E_DENIED.
   */
  bench?: boolean;
  /**
   * TLS on every connection (TLS 1.3); a plaintext client is refused with E_TLS. Without
   * `tlsCert`/`tlsKey` the node makes a self-signed certificate at start: clients pin its
   * `tlsFingerprint`.
   */
  tls?: boolean;
  /** PEM certificate chain (with `tlsKey`; implies `tls`). */
  tlsCert?: string;
  /** PEM private key (with `tlsCert`). */
  tlsKey?: string;
  /** TLS to the receiving node of a copy: its certificate's SHA-256. */
  peerTlsPin?: string;
  /** TLS to the receiving node of a copy: a PEM file of CA certificates. */
  peerTlsCa?: string;
  /**
   * Memory for the buffer pools of all transfers and the indexes they hold (`2G`; default
   * 1 GiB). The push pool (`poolBuffers` x 4 MiB) counts from the start; each pull and copy
   * adds its own pool (sized to its data, at most `poolBuffers` blocks) and index, each push
   * its index. A transfer past it gets E_BUSY, whose message says when to retry.
   */
  memory?: number | string;
  /**
   * `HOST:PORT` targets this node may copy to; a copy anywhere else gets E_DENIED, and
   * without a list the node copies nowhere. A listed host name also allows the addresses it
   * resolves to (`localhost:7000` allows `127.0.0.1:7000`); a name not listed is refused.
   */
  copyTo?: string[];
}

/** A row of the node's transfer table. */
export interface TransferInfo {
  id: number;
  peer: string;
  /** `in`: a client pushed; `out`: a client pulled; `copy`: this node pushed to another for a client. */
  direction: 'in' | 'out' | 'copy' | 'bench';
  path: string;
  bytesDone: number;
  bytesTotal: number;
  filesTotal: number;
  streams: number;
  startedUnixMs: number;
  seconds: number;
  /** Bytes per second so far. */
  rate: number;
  /** null while active. */
  outcome: 'ok' | 'failed' | null;
  code: string | null;
  /** The error's message when failed (an E_IO names the path and the OS error); null otherwise. */
  message: string | null;
  /** Entries a push with `delete` removed from its destination (files, symlinks, directories). */
  deleted: number;
}

/** A connection the node refused in its handshake: a failed login (E_AUTH, E_TLS) or a handshake that timed out or broke the protocol. */
export interface ConnectionRefused {
  /** The peer's IP address. */
  peer: string;
  code: string;
  message: string;
  unixMs: number;
}

export interface BandwidthLimit {
  scope: 'total' | 'peer';
  peer: string | null;
  /** Bytes per second. */
  rate: number;
  passed: number;
  /** Share of the limit used over the last second. */
  utilisation: number;
}

export interface NodeStats {
  root: string;
  listen: string;
  auth: boolean;
  capacity: number | null;
  free: number | null;
  /** Bytes of regular files under the root, as `du -sb` counts them: temporary files included. */
  stored: number;
  /** Bytes reserved by pushes running now and not yet written. */
  reserved: number;
  /** Temporary `.part` files among `stored`: those of running pushes, and those kept for a resume until `resumeTtlMs`. */
  parts: number;
  /** Their bytes (counted at the size they are allocated to). */
  partsBytes: number;
  active: number;
  completed: number;
  failed: number;
  bytesIn: number;
  bytesOut: number;
  pool: { buffers: number; available: number; bufferBytes: number; locked: boolean };
  /** The memory budget (`memory`) and the bytes held now: the push pool, and each transfer's pool and index. */
  memory: { budget: number; held: number };
  limits: BandwidthLimit[];
  peers: { peer: string; bytesIn: number; bytesOut: number }[];
  errors: Record<string, number>;
  readv: { requests: number; segments: number; bytes: number; reads: number };
  /**
   * Connections open now (`handshaking`: of them, those not yet past HELLO/AUTH, which cost no
   * thread), the caps in force, those refused with E_BUSY and those closed to make room.
   */
  connections: { open: number; handshaking: number; max: number; maxPerPeer: number; refused: number; evicted: number };
  transfers: TransferInfo[];
  recent: TransferInfo[];
  lastPlacement: string | null;
  /** Files the node gave their final name by linking in an unnamed O_TMPFILE (files that arrive in one piece). */
  filesLinked: number;
  /** Files the node wrote under a temporary name and renamed (larger files, or every file where O_TMPFILE is off). */
  filesRenamed: number;
  /** How the last push named its files, or why O_TMPFILE was not used (LONGHAUL_NO_TMPFILE, a file system without it, verify full). */
  lastFileCreation: string | null;
  /** The congestion control on the connections the node accepts (`bbr`, `cubic`, ...). */
  congestion: string;
  /** Why not BBR, where `congestion: auto` could not have it. */
  congestionNote: string | null;
}

/** Keys one type has and the other lacks: `never` when the two name the same fields. */
type KeyDrift<A, B> = Exclude<keyof A, keyof B> | Exclude<keyof B, keyof A>;
/**
 * The addon's stats (core's NodeStats) name exactly the fields of the public types, which
 * narrow a few strings to their values; a field added on one side only fails to compile here.
 */
const STATS_MATCH: [
  KeyDrift<NodeStats, Binding.BindingNodeStats>,
  KeyDrift<TransferInfo, Binding.BindingTransferRow>,
  KeyDrift<BandwidthLimit, Binding.BindingLimitStats>,
] extends [never, never, never]
  ? true
  : never = true;

/** The addon's stats as the public type (the same fields; `direction`, `outcome` and `scope` narrowed). */
function fromBinding(s: Binding.BindingNodeStats): NodeStats {
  void STATS_MATCH;
  return {
    ...s,
    limits: s.limits as BandwidthLimit[],
    transfers: s.transfers as TransferInfo[],
    recent: s.recent as TransferInfo[],
  };
}

export interface StorageNodeEvents {
  'transfer:start': [TransferInfo];
  'transfer:progress': [TransferInfo];
  'transfer:end': [TransferInfo];
  'connection:refused': [ConnectionRefused];
}

export interface StorageNode extends EventEmitter<StorageNodeEvents> {
  readonly address: { host: string; port: number };
  /** `host:port`, ready to pass to `send`. */
  readonly url: string;
  readonly root: string;
  /** The SHA-256 of the node's TLS certificate (`sha256:` and 64 hex digits), which clients pin as `tlsPin`; undefined without TLS. */
  readonly tlsFingerprint?: string;
  /** Whether that certificate was made at start (no `tlsCert` given). */
  readonly tlsSelfSigned: boolean;
  stats(): NodeStats;
  /** Active transfers, and the most recent finished ones (up to 100). */
  transfers(): { active: TransferInfo[]; recent: TransferInfo[] };
  /**
   * Stops the node. With `drain`, new transfers are refused (E_BUSY) and the running ones may
   * finish first (for up to `drain` ms, or 60 s with `true`); the rest fail and leave no
   * partial files.
   */
  close(options?: { drain?: boolean | number }): Promise<void>;
  /** Lets the process exit while the node is still open (like net.Server#unref). */
  unref(): this;
}

class Node extends EventEmitter<StorageNodeEvents> implements StorageNode {
  readonly address: { host: string; port: number };
  readonly url: string;
  readonly root: string;
  readonly tlsFingerprint?: string;
  readonly tlsSelfSigned: boolean;
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  private seen = new Set<number>();
  /** Ids of finished transfers already announced (at most the 100 the table keeps). */
  private ended = new Set<number>();

  constructor(
    private readonly server: Binding.BindingServer,
    intervalMs: number,
  ) {
    super();
    this.address = { host: server.host, port: server.port };
    this.url = formatAddress(server.host, server.port);
    this.root = server.root;
    this.tlsFingerprint = server.tlsFingerprint ?? undefined;
    this.tlsSelfSigned = server.tlsSelfSigned;
    // The node's threads are invisible to libuv; this timer keeps the event loop alive for
    // them, and polls the transfer table for events.
    this.timer = setInterval(() => this.poll(), intervalMs);
  }

  private poll(): void {
    // Polled whether or not anyone listens, so a listener added later hears only what
    // happens from then on (about 50 µs a poll for a full table).
    if (this.closed) return;
    for (const r of this.server.takeRefusals()) this.emit('connection:refused', r);
    this.announce(this.stats());
  }

  /** Emits the starts, progress and ends the table shows since the last poll. */
  private announce({ transfers, recent }: { transfers: TransferInfo[]; recent: TransferInfo[] }): void {
    for (const t of transfers) {
      if (!this.seen.has(t.id)) {
        this.seen.add(t.id);
        this.emit('transfer:start', t);
      }
      this.emit('transfer:progress', t);
    }
    for (const t of recent) {
      if (this.ended.has(t.id)) continue;
      // A transfer that began and ended between two polls still gets its start.
      if (!this.seen.has(t.id)) this.emit('transfer:start', { ...t, outcome: null, code: null });
      this.seen.delete(t.id);
      this.emit('transfer:end', t);
    }
    // Transfers end in any order; remember exactly the ones the table still lists.
    this.ended = new Set(recent.map((t) => t.id));
  }

  stats(): NodeStats {
    let s: Binding.BindingNodeStats | null;
    try {
      s = this.server.stats();
    } catch (err) {
      throw fromNative(err);
    }
    if (s == null) throw new LonghaulError('E_CLOSED', 'the node is closed');
    return fromBinding(s);
  }

  transfers(): { active: TransferInfo[]; recent: TransferInfo[] } {
    const s = this.stats();
    return { active: s.transfers, recent: s.recent };
  }

  async close(options: { drain?: boolean | number } = {}): Promise<void> {
    if (this.closed) return;
    const drain = options.drain === true ? 60_000 : typeof options.drain === 'number' ? options.drain : 0;
    if (drain > 0) {
      // The binding waits without holding the node: a close() meanwhile (a second signal)
      // stops it at once, and this one then has nothing left to do.
      await this.server.drain(Math.min(drain, 2 ** 31 - 1));
      if (this.closed) return;
    }
    this.poll();
    this.closed = true;
    clearInterval(this.timer);
    let last: Binding.BindingNodeStats | null;
    try {
      last = this.server.close();
    } catch (err) {
      throw fromNative(err);
    }
    // The transfers the close failed: their ends are announced like any other.
    if (last) this.announce(fromBinding(last));
  }

  unref(): this {
    this.timer.unref();
    return this;
  }
}

/** Starts a storage node. It keeps the process alive until `close()` (or `unref()`). */
export async function serve(options: ServeOptions): Promise<StorageNode> {
  const { cores, token, tokenFile, auth, capacity, rate, peerRates, eventIntervalMs, memory, ...rest } = options;
  const secret = auth === false ? undefined : resolveToken({ token, tokenFile });
  if (auth !== false && secret === undefined) {
    throw new LonghaulError(
      'E_USAGE',
      'a node needs a token (token, tokenFile or LONGHAUL_TOKEN), or auth: false to serve without authentication on loopback',
    );
  }
  // Loaded here, not with the module: node:net and the streams under it are a few ms of every
  // CLI command's start-up, and only a node needs them.
  const { isIP } = await import('node:net');
  const peers = Object.entries(peerRates ?? {}).map(([peer, r]) => {
    if (!isIP(peer)) throw new LonghaulError('E_USAGE', `peer ${JSON.stringify(peer)} is not an IP address`);
    return { peer, rate: parseSize(r, `rate for ${peer}`) };
  });
  let server: Binding.BindingServer;
  try {
    server = native.serve({
      ...rest,
      token: secret,
      capacity: capacity === undefined ? undefined : parseSize(capacity, 'capacity'),
      rate: rate === undefined ? undefined : parseSize(rate, 'rate'),
      memory: memory === undefined ? undefined : parseSize(memory, 'memory'),
      peerRates: peers,
      coresIo: cores?.io,
      coresOther: cores?.other,
    });
  } catch (err) {
    throw fromNative(err);
  }
  return new Node(server, eventIntervalMs ?? 250);
}

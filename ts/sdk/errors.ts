// Errors the SDK and CLI raise. Every failure carries a stable `code` (see docs/ERRORS.md): the
// engine's cross from the addon as the thrown error's `code` property (crates/longhaul-node,
// error.rs), the SDK's and the CLI's own are the few below the engine's list.

/**
 * Every code a LonghaulError can carry, in the order of docs/ERRORS.md: the engine's (the
 * addon's `errorCodes()`, which a test holds this list to) and the three only the SDK and the
 * CLI raise (E_CONFIG, E_VERIFY, E_INTERNAL).
 */
export const ERROR_CODES = [
  'E_USAGE',
  'E_CONFIG',
  'E_CONNECT',
  'E_LISTEN',
  'E_NET',
  'E_PROTOCOL',
  'E_VERSION',
  'E_TIMEOUT',
  'E_NOT_FOUND',
  'E_SOURCE_CHANGED',
  'E_PATH_ESCAPE',
  'E_BAD_PATH',
  'E_DUPLICATE',
  'E_INDEX',
  'E_LIMIT',
  'E_AUTH',
  'E_BUSY',
  'E_DENIED',
  'E_TLS',
  'E_CAPACITY',
  'E_IO',
  'E_NOSPACE',
  'E_CONFLICT',
  'E_CHECKSUM',
  'E_VERIFY',
  'E_CANCELLED',
  'E_CLOSED',
  'E_PANIC',
  'E_INTERNAL',
] as const;

/** A documented error code (docs/ERRORS.md). */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The codes only the SDK and the CLI raise; every other one is the engine's. */
export const SDK_ERROR_CODES: readonly ErrorCode[] = ['E_CONFIG', 'E_VERIFY', 'E_INTERNAL'];

/** The hint a node's E_BUSY carries when its memory budget is full ("retry after 5 s"). */
const RETRY_AFTER = /retry after (\d+(?:\.\d+)?) s\b/;

export class LonghaulError extends Error {
  readonly code: ErrorCode;
  /** For E_BUSY: how long the node asked the client to wait before trying again, when it said. */
  readonly retryAfterMs?: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LonghaulError';
    this.code = code;
    const m = code === 'E_BUSY' ? RETRY_AFTER.exec(message) : null;
    if (m) this.retryAfterMs = Math.round(Number(m[1]) * 1000);
  }
}

/**
 * Turns an error thrown by the addon into a LonghaulError: the engine's carry their code as
 * `code`. One napi-rs raised itself (an argument of the wrong type: `code` is napi's status,
 * such as `InvalidArg`) or anything else is E_INTERNAL. A code from a peer of another version
 * (an ERROR frame) is kept as it came, though this version does not document it.
 */
export function fromNative(err: unknown): LonghaulError {
  if (err instanceof LonghaulError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('E_')
    ? new LonghaulError(code as ErrorCode, message, { cause: err })
    : new LonghaulError('E_INTERNAL', message, { cause: err });
}

/**
 * CLI exit status for each error code. Documented in docs/ERRORS.md; scripts may rely on it.
 */
export function exitCodeFor(code: ErrorCode | string): number {
  switch (code) {
    case 'E_USAGE':
    case 'E_CONFIG':
    // A call on a closed StorageNode or Client is the caller's mistake, as a bad option is.
    case 'E_CLOSED':
      return 2;
    case 'E_CONNECT':
    case 'E_LISTEN':
    case 'E_NET':
    case 'E_PROTOCOL':
    case 'E_VERSION':
    case 'E_TIMEOUT':
      return 3;
    case 'E_NOT_FOUND':
    case 'E_SOURCE_CHANGED':
      return 4;
    case 'E_PATH_ESCAPE':
    case 'E_BAD_PATH':
    case 'E_DUPLICATE':
    case 'E_INDEX':
    case 'E_LIMIT':
    case 'E_AUTH':
    case 'E_TLS':
    case 'E_BUSY':
    case 'E_DENIED':
      return 5;
    case 'E_IO':
    case 'E_NOSPACE':
    case 'E_CAPACITY':
    case 'E_CONFLICT':
      return 6;
    case 'E_CHECKSUM':
    case 'E_VERIFY':
      return 7;
    case 'E_CANCELLED':
      return 130;
    // sysexits' EX_SOFTWARE: a bug in longhaul, which no retry or other input helps.
    case 'E_PANIC':
      return 70;
    default:
      return 1;
  }
}

/** What to do about each code: the CLI's one line ends with it. docs/ERRORS.md says more. */
const FIXES: Record<ErrorCode, string> = {
  E_USAGE: 'see `longhaul --help`',
  E_CONFIG:
    'fix the named key in the config file, the LONGHAUL_* variable or the flag; `longhaul config` shows where each value comes from',
  E_CONNECT: 'check the address and that `longhaul serve` runs there',
  E_LISTEN:
    "listen on another port (--listen HOST:PORT, --metrics HOST:PORT), find what holds it with `ss -ltnp 'sport = :PORT'`, or for a port below 1024 run as root or grant CAP_NET_BIND_SERVICE",
  E_NET: "retry; look at the node's log for its side",
  E_PROTOCOL: 'run the same longhaul version on both ends',
  E_VERSION: 'upgrade the older end',
  E_TIMEOUT: 'check the network and the node; raise --io-timeout / --idle-timeout for slow links',
  E_NOT_FOUND: 'check the path',
  E_SOURCE_CHANGED: 'send again once writers are done with the source',
  E_PATH_ESCAPE: 'send to a destination inside the root with no symlinks on the way',
  E_BAD_PATH: 'the index was hand-made or damaged; send again',
  E_DUPLICATE: 'the index was hand-made or damaged; send again',
  E_INDEX: 'the index was hand-made or damaged; send again',
  E_LIMIT: "use smaller values, split the request, or raise the node's limit",
  E_AUTH: 'use the same token on both sides (--token-file, LONGHAUL_TOKEN or LONGHAUL_TOKEN_FILE)',
  E_BUSY:
    "retry later (after the time the node names, if it does), or raise the node's --max-transfers or --memory (or --max-connections / --max-per-peer)",
  E_DENIED:
    "copy to a target the node allows, or have its operator add it to --copy-to (copyTo in the node's config); a bench needs a node started without --no-bench",
  E_TLS:
    "match TLS on both ends: --tls-pin with the fingerprint 'serve --tls' prints (or --tls-ca for a CA-signed node); a node without TLS takes no TLS client",
  E_CAPACITY: 'free space on the node or raise its --capacity',
  E_IO: 'check permissions and the file system at the named path',
  E_NOSPACE: 'make room on the destination and send again',
  E_CONFLICT: 'move or remove what is at the named path on the receiving side, or send to another destination',
  E_CHECKSUM: 'check the network path (NIC offload, a proxy) and send again',
  E_VERIFY: 'report it: the copy differs from the source',
  E_CANCELLED: '',
  E_CLOSED: 'the StorageNode or Client was closed: start a new node with serve(), or connect() again',
  E_PANIC: 'report it with the output of --debug',
  E_INTERNAL: 'report it with the output of --debug',
};

/** The one-line advice for a code ('' when there is nothing to do). */
export function fixFor(code: ErrorCode | string): string {
  return (FIXES as Record<string, string>)[code] ?? FIXES.E_INTERNAL;
}

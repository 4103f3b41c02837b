// Small pieces every SDK call shares: auth tokens, sizes, progress conversion, cancellation.
import { readFileSync } from 'node:fs';

import { fromNative, LonghaulError } from './errors.js';
import type { Binding } from './native.js';
import { native } from './native.js';

export interface AuthOptions {
  /** The node's shared token. Prefer `tokenFile` or LONGHAUL_TOKEN: a literal stays in memory and in your code. */
  token?: string;
  /** A file holding the token (surrounding whitespace ignored). */
  tokenFile?: string;
}

/**
 * TLS to the node: on when either is given, never a silent fallback to plaintext (a node
 * without TLS, or one whose certificate does not match, is E_TLS).
 */
export interface TlsOptions {
  /** The SHA-256 of the node's certificate, as `longhaul serve --tls` prints it (`sha256:...`). */
  tlsPin?: string;
  /** A PEM file of CA certificates the node's certificate must chain to, for the host name given. */
  tlsCa?: string;
}

/**
 * The token to use: `token`, else the contents of `tokenFile`, else LONGHAUL_TOKEN, else the
 * file named by LONGHAUL_TOKEN_FILE; undefined when none is set (empty variables count as unset).
 */
export function resolveToken(o: AuthOptions, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (o.token !== undefined) return o.token;
  const file = o.tokenFile ?? (env.LONGHAUL_TOKEN ? undefined : env.LONGHAUL_TOKEN_FILE || undefined);
  if (file !== undefined) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new LonghaulError('E_USAGE', `cannot read the token file ${file}: ${(err as Error).message}`, { cause: err });
    }
  }
  return env.LONGHAUL_TOKEN || undefined;
}

const UNIT: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/** `500G`, `200M`, `1.5k`, `4096` or a number: bytes (K, M, G, T, P are powers of 1024). */
export function parseSize(v: number | string, what = 'size'): number {
  if (typeof v === 'number') {
    if (Number.isFinite(v) && v >= 0) return Math.floor(v);
  } else {
    const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$/i.exec(v.trim());
    if (m) return Math.floor(Number(m[1]) * UNIT[m[2]!.toLowerCase()]!);
  }
  throw new LonghaulError('E_USAGE', `${what} ${JSON.stringify(v)} is not a size such as 500G, 200M or 1048576`);
}

export interface Progress {
  /** Bytes at the destination so far: those that travelled this time and those it held already. */
  bytesDone: number;
  bytesTotal: number;
  /** Bytes that travelled in this run; resumed blocks and files already there are not counted. */
  bytesMoved: number;
  filesDone: number;
  filesTotal: number;
  /** Files with blocks under way and not yet all sent (a send; 0 where the side cannot tell). */
  filesInFlight: number;
  seconds: number;
  /** `bytesMoved / seconds`: the rate of this run, never inflated by bytes that did not travel. */
  bytesPerSecond: number;
  perStreamBytes: number[];
}

export function progressAdapter(onProgress?: (p: Progress) => void): ((p: Binding.BindingProgress) => void) | undefined {
  return onProgress ? (p) => onProgress({ ...p, bytesPerSecond: rateOf(p.bytesMoved, p.seconds) }) : undefined;
}

/** Bytes per second of what moved; 0 for a run too short to time. */
export function rateOf(bytesMoved: number, seconds: number): number {
  return seconds > 0 ? bytesMoved / seconds : 0;
}

/**
 * Runs an engine call with a cancel flag tied to `signal`; engine errors become LonghaulError.
 * A cancellation by `signal` carries `signal.reason` as its `cause` (what `abort(reason)` was
 * given, or the AbortError DOMException), so the caller can tell its own reasons apart.
 */
export async function cancellable<T>(signal: AbortSignal | undefined, run: (cancel: Binding.BindingCancel) => Promise<T>): Promise<T> {
  if (signal?.aborted) throw new LonghaulError('E_CANCELLED', 'transfer cancelled before it started', { cause: signal.reason });
  const cancel = new native.BindingCancel();
  const onAbort = (): void => cancel.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await run(cancel);
  } catch (err) {
    const e = fromNative(err);
    // The engine only knows its flag was set; the reason lives on the signal, and it is the
    // cause the caller asked for (the engine's error adds nothing to "transfer cancelled").
    throw signal?.aborted && e.code === 'E_CANCELLED' ? new LonghaulError('E_CANCELLED', e.message, { cause: signal.reason }) : e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Checks a `verify` option (the engine checks too; this names the option in the error). */
export function checkVerify(v: string | undefined): void {
  if (v !== undefined && v !== 'block' && v !== 'full') {
    throw new LonghaulError('E_USAGE', `verify must be 'block' or 'full', got ${JSON.stringify(v)}`);
  }
}

/** What every finished transfer reports. */
export interface TransferTotals {
  /** Bytes of the whole tree, now at the destination: `bytesMoved + bytesAlready` (+ the holes of sparse files a send left as holes). */
  bytes: number;
  /** Bytes that travelled in this run. */
  bytesMoved: number;
  /** Bytes the destination held already and were not sent again (resumed blocks, unchanged files). */
  bytesAlready: number;
  files: number;
  dirs: number;
  symlinks: number;
  blocks: number;
  /** Wall time of the call, scan included. */
  seconds: number;
  /** Time the receiving side spent from the index to its summary. */
  receiverSeconds: number;
  /** `bytesMoved / seconds`: a re-run that moved nothing reports 0, not the tree over a blink. */
  bytesPerSecond: number;
  /** How arrival was proven: `block` (XXH3 of every block) or `full` (each file's BLAKE3 too). */
  verify: VerifyMode;
  /** Files the receiver read back and found with the sender's BLAKE3 (`verify: 'full'`; else 0). */
  verifiedFiles: number;
}

/**
 * `block`: an XXH3 of every block, checked on arrival (always on). `full`: besides, the sender
 * reads every file once more for a BLAKE3 of it and the receiver reads every file back after
 * writing it and compares before the file takes its final name (as GridFTP's
 * `-verify-checksum` and xrdcp's `--cksum`).
 */
export type VerifyMode = 'block' | 'full';

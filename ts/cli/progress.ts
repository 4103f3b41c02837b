// Progress for the CLI: a bar on a terminal; one JSON object per line otherwise (or with --json).
import type cliProgress from 'cli-progress';

import * as fmt from './format.js';
import type { Progress, RetryEvent, SendSummary, TransferTotals } from '../sdk/index.js';

export interface Reporter {
  progress(p: Progress): void;
  /** An attempt failed and another follows. */
  retry?(r: RetryEvent): void;
  /** The transfer ended: with its totals when it succeeded, so the bar's last figures are the summary's. */
  done(final?: TransferTotals): void;
}

function retryLine(r: RetryEvent): string {
  return `attempt ${r.attempt} failed (${r.code}: ${r.message}); resuming in ${fmt.duration(r.delayMs / 1000)}`;
}

/** Rate smoothed over the last few seconds, for a steadier ETA than the whole-run average. */
class SmoothedRate {
  private last?: { t: number; b: number };
  private value = 0;
  /** From the bytes that moved: resumed bytes, counted as done at once, are no speed. */
  update(p: Pick<Progress, 'seconds' | 'bytesMoved' | 'bytesPerSecond'>): number {
    if (this.last && p.seconds > this.last.t) {
      const inst = (p.bytesMoved - this.last.b) / (p.seconds - this.last.t);
      // ~2 s time constant at 10 updates a second.
      this.value = this.value === 0 ? inst : 0.95 * this.value + 0.05 * inst;
    }
    this.last = { t: p.seconds, b: p.bytesMoved };
    return this.value || p.bytesPerSecond;
  }
}

// Under 120 columns with millions of files: the bar is 30 of them.
const BAR_FORMAT = '{bar} {percentage}% | {done} / {size} | {files} files{inflight} | {rate} | {elapsed}, {remaining}';
const STREAM_FORMAT = '{bar} stream {stream} | {done} | {rate}';

// Loaded by `loadBars`, before the first `barReporter`, only when a bar is drawn (on a terminal):
// scripts and cron pay nothing for it.
let bars: typeof cliProgress | undefined;

export async function loadBars(): Promise<void> {
  bars ??= (await import('cli-progress')).default;
}

/**
 * The whole job's bar: pre-scanned totals, bytes and files done, a smoothed rate and ETA. With
 * `streamsDetail`, one bar per data stream under it (its bytes against an even share).
 */
export function barReporter(stream: NodeJS.WriteStream, opts: { streamsDetail?: boolean } = {}): Reporter {
  const multi = new bars!.MultiBar(
    {
      stream,
      // Our own names: {total} and {eta} are cli-progress's built-ins (raw bytes, seconds).
      format: BAR_FORMAT,
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      fps: 10,
      // Draw when not a TTY too: the caller only makes a bar reporter for a terminal.
      noTTYOutput: true,
    },
    bars!.Presets.shades_classic,
  );
  const smooth = new SmoothedRate();
  let total: cliProgress.SingleBar | undefined;
  const streams: { bar: cliProgress.SingleBar; rate: SmoothedRate }[] = [];
  const draw = (value: number, size: number, payload: Record<string, string>): void => {
    if (!total) total = multi.create(Math.max(size, 1), value, payload);
    else total.update(value, payload);
  };
  return {
    progress(p) {
      const r = smooth.update(p);
      // Every byte sent is not every byte confirmed: until the summary comes, the bar stops
      // short of full and says what it waits for (the receiver's last writes and checks).
      const sent = p.bytesDone >= p.bytesTotal;
      const payload = {
        done: fmt.bytes(p.bytesDone),
        size: fmt.bytes(p.bytesTotal),
        files: `${fmt.count(p.filesDone)}/${fmt.count(p.filesTotal)}`,
        inflight: p.filesInFlight > 0 ? `, ${fmt.count(p.filesInFlight)} open` : '',
        rate: fmt.rate(r),
        elapsed: `${fmt.duration(p.seconds)} elapsed`,
        remaining: sent ? 'confirming' : r > 0 ? `ETA ${fmt.duration((p.bytesTotal - p.bytesDone) / r)}` : 'ETA --',
      };
      draw(sent ? p.bytesTotal * 0.99 : p.bytesDone, p.bytesTotal, payload);
      if (!opts.streamsDetail) return;
      const share = Math.max(1, p.bytesTotal / Math.max(p.perStreamBytes.length, 1));
      p.perStreamBytes.forEach((b, i) => {
        if (!streams[i]) streams[i] = { bar: multi.create(share, 0, {}, { format: STREAM_FORMAT }), rate: new SmoothedRate() };
        const s = streams[i]!;
        const sr = s.rate.update({ seconds: p.seconds, bytesMoved: b, bytesPerSecond: p.seconds > 0 ? b / p.seconds : 0 });
        s.bar.setTotal(Math.max(share, b));
        s.bar.update(b, { stream: i, done: fmt.bytes(b), rate: fmt.rate(sr) });
      });
    },
    retry(r) {
      multi.log(`${retryLine(r)}\n`);
    },
    done(final) {
      if (final)
        draw(final.bytes, final.bytes, {
          done: fmt.bytes(final.bytes),
          size: fmt.bytes(final.bytes),
          files: `${fmt.count(final.files)}/${fmt.count(final.files)}`,
          inflight: '',
          rate: fmt.rate(final.bytesPerSecond),
          elapsed: `${fmt.duration(final.seconds)} elapsed`,
          remaining: 'done',
        });
      multi.stop();
    },
  };
}

export function jsonReporter(out: NodeJS.WritableStream): Reporter {
  return {
    progress(p) {
      out.write(`${JSON.stringify({ type: 'progress', ...p })}\n`);
    },
    retry(r) {
      out.write(`${JSON.stringify({ type: 'retry', ...r })}\n`);
    },
    done() {},
  };
}

export const silentReporter: Reporter = { progress() {}, done() {} };

/**
 * The first line of every transfer's summary, alike for send, get and copy: what travelled this
 * time and at what rate, and what the destination held already. A re-run that moved nothing
 * says so rather than dividing the whole tree by a blink.
 */
export function movedLine(s: TransferTotals, verb: string, where: string, streams?: number): string {
  const tree = [
    fmt.plural(s.files, 'file'),
    s.dirs > 0 ? fmt.plural(s.dirs, 'dir') : '',
    s.symlinks > 0 ? fmt.plural(s.symlinks, 'symlink') : '',
  ]
    .filter(Boolean)
    .join(', ');
  const took = `${s.seconds.toFixed(2)} s`;
  if (s.bytesMoved === 0 && s.bytesAlready > 0)
    return `0 B ${verb}: ${fmt.bytes(s.bytesAlready)} already ${where} (${tree}, checked in ${took})`;
  const of = s.bytesAlready > 0 ? ` of ${fmt.bytes(s.bytes)} (${fmt.bytes(s.bytesAlready)} already ${where})` : '';
  const over = streams ? ` over ${fmt.plural(streams, 'stream')}` : '';
  return `${verb} ${fmt.bytes(s.bytesMoved)}${of} in ${tree} in ${took}: ${fmt.rate(s.bytesPerSecond)}${over}`;
}

/** How the receiver proved the files it wrote. */
export function verifiedLine(s: TransferTotals): string {
  return s.verify === 'full'
    ? `verified: ${fmt.plural(s.verifiedFiles, 'file')} read back with the sender's BLAKE3, every block by XXH3`
    : `verified: every block by XXH3 on arrival (--verify full also checks each file's BLAKE3)`;
}

/** What the node found already there, and how it told (`--checksum`, `--verify full`). */
export function unchangedLine(s: SendSummary): string | undefined {
  const u = s.unchanged;
  // A first send finds nothing unchanged by size and mtime: not worth a line. Asked to compare
  // content, the user hears the answer even when it is none.
  if (!u || (u.files === 0 && u.by === 'size+mtime')) return undefined;
  const how = u.by === 'size+mtime+BLAKE3' ? 'size+mtime, each confirmed by BLAKE3' : u.by;
  return `unchanged: ${fmt.plural(u.files, 'file')} by ${how} (${fmt.bytes(u.bytes)}, not sent)`;
}

/**
 * The summary a person reads: by default what was moved and how it was verified, plus what is
 * out of the ordinary (resumed, retried, skipped); with `verbose` (`-v`) also the fast paths,
 * scheduler, placement, round trips, congestion control and what limited the run.
 */
export function summaryLines(s: SendSummary, verbose = false): string[] {
  const paths = [
    s.fastPaths.sendfile
      ? `sendfile (${fmt.count(s.sendfileBlocks)} blocks, ${fmt.bytes(s.sendfileBytes)})`
      : `no sendfile: ${s.fastPaths.sendfileFallback}`,
    s.fastPaths.mlock ? 'mlock' : `no mlock: ${s.fastPaths.mlockFallback}`,
  ];
  const lines = [movedLine(s, 'sent', 'on the node', s.streams)];
  const detail = [
    `fast paths: ${paths.join('; ')}`,
    `time: ${s.seconds.toFixed(3)} s, scan ${s.scanSeconds.toFixed(3)} s, first byte ${s.firstByteSeconds === undefined ? 'never (nothing to send)' : `at ${s.firstByteSeconds.toFixed(3)} s`}`,
    `streams: ${s.streams} (${s.streamsReason ?? 'fixed by --streams'})`,
    `scheduler: ${s.scheduler.used}${s.scheduler.requested === 'auto' ? ` (auto: ${s.scheduler.reason})` : ''}`,
    `placement: ${s.placement.reason}; ${s.placement.pinned ? `${s.placement.threads.length} threads pinned` : `not pinned: ${s.placement.fallback}`}`,
    `round trips: ${s.roundTrips} (handshake, manifest, end; none per file or block)`,
    `congestion control: ${s.congestion}${s.congestionNote ? ` (${s.congestionNote})` : ''}`,
  ];
  if (verbose) lines.push(...detail);
  lines.push(verifiedLine(s));
  const unchanged = unchangedLine(s);
  if (unchanged) lines.push(unchanged);
  // The first line says what was there already; -v says in how many blocks.
  if (verbose && s.endgameBlocks > 0)
    lines.push(
      `end-game: ${fmt.plural(s.endgameBlocks, 'block')} (${fmt.bytes(s.endgameBytes)}) sent again on idle streams while slow ones still carried them; the node kept the first copy`,
    );
  if (verbose && s.resumedBytes > 0)
    lines.push(`resumed: ${fmt.bytes(s.resumedBytes)} (${fmt.plural(s.resumedBlocks, 'block')}) already on the node, not sent again`);
  // What the transfer does not keep is said, never dropped in silence.
  const notKept = [
    s.hardLinks > 0 ? `hard links of ${fmt.plural(s.hardLinks, 'file')} (the node cannot make them: each sent as a file of its own)` : '',
    s.sparseFiles > 0 ? `holes of ${fmt.plural(s.sparseFiles, 'sparse file')} (written as zeros)` : '',
    s.ownerNotKept > 0 ? `owner of ${fmt.plural(s.ownerNotKept, 'file')}: ${s.ownerNotKeptWhy}` : '',
    s.xattrsNotKept > 0 ? `extended attributes of ${fmt.plural(s.xattrsNotKept, 'file')}: ${s.xattrsNotKeptWhy}` : '',
  ].filter(Boolean);
  if (notKept.length > 0) lines.push(`not kept: ${notKept.join('; ')}`);
  if (s.excluded > 0)
    lines.push(
      `excluded: ${fmt.count(s.excluded)} ${s.excluded === 1 ? 'entry' : 'entries'} left out by the filters (a directory counts once)`,
    );
  if (s.attempts > 1) lines.push(`attempts: ${s.attempts} (retried after ${s.retried.map((r) => r.code).join(', ')})`);
  if (s.skipped.length > 0) lines.push(`skipped ${s.skipped.length} special files (first: ${s.skipped[0]!.path}, ${s.skipped[0]!.reason})`);
  // Last: what limited the run, with its evidence.
  if (verbose) lines.push(`limited by: ${s.verdict.limit} (${s.verdict.evidence})`);
  return lines;
}

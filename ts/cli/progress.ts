// Progress for the CLI: a bar on a terminal; one JSON object per line otherwise (or with --json).
import type cliProgress from 'cli-progress';

import * as fmt from './format.js';
import type { Progress, RetryEvent, SendSummary, TransferTotals } from '../sdk/index.js';

export interface Reporter {
  progress(p: Progress): void;
  /** An attempt failed and another follows. */
  retry?(r: RetryEvent): void;
  done(): void;
}

function retryLine(r: RetryEvent): string {
  return `attempt ${r.attempt} failed (${r.code}: ${r.message}); resuming in ${fmt.duration(r.delayMs / 1000)}`;
}

/** Rate smoothed over the last few seconds, for a steadier ETA than the whole-run average. */
class SmoothedRate {
  private last?: { t: number; b: number };
  private value = 0;
  update(p: Progress): number {
    if (this.last && p.seconds > this.last.t) {
      const inst = (p.bytesDone - this.last.b) / (p.seconds - this.last.t);
      // ~2 s time constant at 10 updates a second.
      this.value = this.value === 0 ? inst : 0.95 * this.value + 0.05 * inst;
    }
    this.last = { t: p.seconds, b: p.bytesDone };
    return this.value || p.bytesPerSecond;
  }
}

const BAR_FORMAT = '{bar} {percentage}% | {done} / {size} | {files} files | {rate} | ETA {remaining}';
const STREAM_FORMAT = '{bar} stream {stream} | {done} | {rate}';

// Loaded by `loadBars` only when a bar is drawn (on a terminal): scripts and cron pay nothing for it.
let bars: typeof cliProgress | undefined;

export async function loadBars(): Promise<void> {
  bars ??= (await import('cli-progress')).default;
}

/**
 * The whole job's bar (call `loadBars` first): pre-scanned totals, bytes and files done, a smoothed rate and ETA. With
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
  return {
    progress(p) {
      const r = smooth.update(p);
      const payload = {
        done: fmt.bytes(p.bytesDone),
        size: fmt.bytes(p.bytesTotal),
        files: `${fmt.count(p.filesDone)}/${fmt.count(p.filesTotal)}`,
        rate: fmt.rate(r),
        remaining: r > 0 ? fmt.duration((p.bytesTotal - p.bytesDone) / r) : '--',
      };
      if (!total) total = multi.create(Math.max(p.bytesTotal, 1), p.bytesDone, payload);
      else total.update(p.bytesDone, payload);
      if (!opts.streamsDetail) return;
      const share = Math.max(1, p.bytesTotal / Math.max(p.perStreamBytes.length, 1));
      p.perStreamBytes.forEach((b, i) => {
        if (!streams[i]) streams[i] = { bar: multi.create(share, 0, {}, { format: STREAM_FORMAT }), rate: new SmoothedRate() };
        const s = streams[i]!;
        const sr = s.rate.update({ ...p, bytesDone: b, bytesPerSecond: p.seconds > 0 ? b / p.seconds : 0 });
        s.bar.setTotal(Math.max(share, b));
        s.bar.update(b, { stream: i, done: fmt.bytes(b), rate: fmt.rate(sr) });
      });
    },
    retry(r) {
      multi.log(`${retryLine(r)}\n`);
    },
    done() {
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

/** How the receiver proved the files it wrote. */
export function verifiedLine(s: TransferTotals): string {
  return s.verify === 'full'
    ? `verified: ${fmt.plural(s.verifiedFiles, 'file')} read back with the sender's BLAKE3, every block by XXH3`
    : `verified: every block by XXH3 on arrival (--verify full also checks each file's BLAKE3)`;
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
  const lines = [
    `sent ${fmt.bytes(s.bytes)} in ${fmt.plural(s.files, 'file')}, ${fmt.plural(s.dirs, 'dir')}, ${fmt.plural(s.symlinks, 'symlink')} ` +
      `in ${s.seconds.toFixed(2)} s: ${fmt.rate(s.bytesPerSecond)} over ${fmt.plural(s.streams, 'stream')}`,
  ];
  const detail = [
    `fast paths: ${paths.join('; ')}`,
    `scheduler: ${s.scheduler.used}${s.scheduler.requested === 'auto' ? ` (auto: ${s.scheduler.reason})` : ''}`,
    `placement: ${s.placement.reason}; ${s.placement.pinned ? `${s.placement.threads.length} threads pinned` : `not pinned: ${s.placement.fallback}`}`,
    `round trips: ${s.roundTrips} (handshake, manifest, end; none per file or block)`,
    `congestion control: ${s.congestion}${s.congestionNote ? ` (${s.congestionNote})` : ''}`,
  ];
  if (verbose) lines.push(...detail);
  lines.push(verifiedLine(s));
  if (s.resumedBytes > 0)
    lines.push(`resumed: ${fmt.bytes(s.resumedBytes)} (${fmt.plural(s.resumedBlocks, 'block')}) already on the node, not sent again`);
  if (s.attempts > 1) lines.push(`attempts: ${s.attempts} (retried after ${s.retried.map((r) => r.code).join(', ')})`);
  if (s.skipped.length > 0) lines.push(`skipped ${s.skipped.length} special files (first: ${s.skipped[0]!.path}, ${s.skipped[0]!.reason})`);
  // Last: what limited the run, with its evidence.
  if (verbose) lines.push(`limited by: ${s.verdict.limit} (${s.verdict.evidence})`);
  return lines;
}

// `longhaul send`: push a file or a tree to a node, with progress, a summary, and optionally the timeline and an HTML report.
import { writeFileSync } from 'node:fs';

import { send } from '../../sdk/index.js';
import { credentials, settings, withConfig } from '../options.js';
import { fail, printSummary, reporterFor, silentReporter, type OutputFlags, type Reporter } from '../output.js';
import { program } from '../program.js';
import { ProgressRecorder, writeReport } from '../report.js';

export function register(): void {
  withConfig(
    program
      .command('send')
      .description('send a file or a directory tree to a node')
      .argument('<source>', 'file or directory to send')
      .argument('<target>', 'HOST:PORT[/DEST] of the node; a directory SRC arrives as DEST/SRC')
      .option('--timeline <file>', 'write the thread-state timeline (JSON) to FILE')
      .option('--report <file>', 'write an HTML report (throughput, per-stream bytes, thread states, summary) to FILE')
      .option('--streams-detail', 'on a terminal, a bar per stream under the total')
      .option('--json', 'print progress and the summary as JSON lines')
      .option('-q, --quiet', 'no progress output'),
    'send',
  ).action(
    async (
      source: string,
      target: string,
      o: Record<string, unknown> & OutputFlags & { timeline?: string; report?: string; streamsDetail?: boolean },
    ) => {
      const json = Boolean(o.json);
      let reporter: Reporter = silentReporter;
      try {
        const c = settings(o, 'send').values;
        reporter = reporterFor(json, Boolean(o.quiet), Boolean(o.streamsDetail));
        const recorder = new ProgressRecorder();
        const abort = new AbortController();
        process.once('SIGINT', () => abort.abort());
        const s = await send(source, target, {
          streams: c.streams,
          blockSize: c.blockSize,
          poolBuffers: c.poolBuffers,
          readers: c.readers,
          signal: abort.signal,
          onProgress: (p) => {
            recorder.add(p);
            reporter.progress(p);
          },
          progressIntervalMs: json || !process.stderr.isTTY ? 500 : 100,
          scheduler: c.scheduler,
          digest: c.digest,
          cores: c.coresIo ? { io: c.coresIo, other: c.coresOther } : undefined,
          pin: c.pin,
          ioTimeoutMs: c.ioTimeout ? c.ioTimeout * 1000 : undefined,
          ...credentials(c),
          resume: c.resume,
          checksum: c.checksum,
          verify: c.verify,
          congestion: c.congestion,
          retries: c.retries,
          retryDelayMs: c.retryDelay === undefined ? undefined : c.retryDelay * 1000,
          onRetry: (r) => reporter.retry?.(r),
        });
        reporter.done(s);
        if (o.timeline) {
          writeFileSync(
            o.timeline,
            `${JSON.stringify({ scheduler: s.scheduler, placement: s.placement, samples: s.timeline }, null, 1)}\n`,
          );
        }
        if (o.report)
          writeReport(o.report, { summary: s, source, target, progress: recorder.samples(), command: process.argv.slice(2).join(' ') });
        printSummary(s, json, o.report ? { report: o.report } : {});
      } catch (err) {
        reporter.done();
        fail(err, json);
      }
    },
  );
}

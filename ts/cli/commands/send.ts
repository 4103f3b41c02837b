// `longhaul send`: push a file or a tree to a node, with progress, a summary, and optionally the timeline and an HTML report.
import { readFileSync, writeFileSync } from 'node:fs';

import { LonghaulError, send, sendPlan, type SendOptions } from '../../sdk/index.js';
import { credentials, settings, withConfig } from '../options.js';
import { fail, printPlan, printSummary, reporterFor, silentReporter, type OutputFlags, type Reporter } from '../output.js';
import { program } from '../program.js';
import type { ProgressRecorder } from '../report.js';

/** Filter rules in the order their flags came: `- P`, `+ P`, or `@ FILE` to read. */
const rules: string[] = [];
function rule(kind: '-' | '+' | '@'): (value: string) => string[] {
  return (value) => {
    rules.push(`${kind} ${value}`);
    return rules;
  };
}

/** The rules with each `--exclude-from` file read in its place. */
function readRules(given: string[]): string[] {
  return given.flatMap((r) => {
    if (!r.startsWith('@ ')) return [r];
    const file = r.slice(2);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new LonghaulError('E_USAGE', `--exclude-from ${file}: ${(err as Error).message}`);
    }
    return text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => (/^[-+] /.test(l) ? l : `- ${l}`));
  });
}

/** What a dry run needs of the options: those that decide what the node holds and what it deletes. */
function planOptions(c: ReturnType<typeof settings>['values'], force: boolean | undefined): SendOptions {
  return {
    blockSize: c.blockSize,
    ioTimeoutMs: c.ioTimeout ? c.ioTimeout * 1000 : undefined,
    ...credentials(c),
    resume: c.resume,
    checksum: c.checksum,
    filters: readRules(rules),
    verify: c.verify,
    delete: c.delete,
    force: Boolean(force),
  };
}

export function register(): void {
  withConfig(
    program
      .command('send')
      .description('send files or directory trees to a node, each as a transfer of its own, in order')
      .argument('<paths...>', 'SRC... (files or directories) then HOST[:PORT][/DEST]; a directory SRC arrives as DEST/SRC')
      .option('--timeline <file>', 'write the thread-state timeline (JSON) to FILE')
      .option('--report <file>', 'write an HTML report (throughput, per-stream bytes, thread states, summary) to FILE')
      .option('--streams-detail', 'on a terminal, a bar per stream under the total')
      .option('--json', 'print progress and the summary as JSON lines')
      .option('-q, --quiet', 'print nothing on success (errors still go to stderr)')
      .option(
        '-v, --verbose',
        'also print the fast paths, scheduler, placement and what limited the run; with --delete or --dry-run, the paths',
      )
      .option('-n, --dry-run', 'send nothing and write nothing: print what would be sent (+), updated (>) and with --delete deleted (-)')
      .option('--force', 'with --delete: proceed though SRC lists nothing (its copy on the node is emptied)')
      .option(
        '-a, --archive',
        'what a mirror keeps, as rsync -aHSX: the tree, modes, mtimes, symlinks, hard links and sparse files (always kept), and also --owner, --group and --xattrs; what cannot be kept is named',
      )
      // One list for the three, in the order given: the first rule that matches decides.
      .option('--exclude <pattern>', 'leave out what matches PATTERN, gitignore syntax below the source (repeatable)', rule('-'))
      .option('--include <pattern>', 'keep what matches PATTERN though a later --exclude matches it (repeatable)', rule('+'))
      .option(
        '--exclude-from <file>',
        'rules from FILE, one a line: a pattern or "- PAT" leaves out, "+ PAT" keeps; # comments',
        rule('@'),
      ),
    'send',
  ).action(
    async (
      paths: string[],
      o: Record<string, unknown> &
        OutputFlags & { timeline?: string; report?: string; streamsDetail?: boolean; dryRun?: boolean; force?: boolean },
    ) => {
      const json = Boolean(o.json);
      let reporter: Reporter = silentReporter;
      try {
        const target = paths.at(-1)!;
        const sources = paths.slice(0, -1);
        if (sources.length === 0)
          throw new LonghaulError('E_USAGE', 'name what to send and where: longhaul send SRC... HOST[:PORT][/DEST]');
        if (sources.length > 1 && (o.report || o.timeline))
          throw new LonghaulError('E_USAGE', '--report and --timeline describe one transfer: give one SRC with them');
        const c = settings(o, 'send').values;
        // rsync merges several sources into DEST and deletes what none of them has; here each
        // source is a transfer of its own, so one's deletion would not know the others'.
        if (c.delete && sources.length > 1)
          throw new LonghaulError('E_USAGE', '--delete mirrors one SRC into DEST/SRC: give one SRC per send with --delete');
        if (o.force && !c.delete) throw new LonghaulError('E_USAGE', '--force goes with --delete');
        if (o.dryRun) {
          for (const source of sources) printPlan(await sendPlan(source, target, planOptions(c, o.force)), o);
          return;
        }
        // One transfer per source, in order, each with its own summary; the first failure stops
        // the rest, as cp and scp do.
        const abort = new AbortController();
        process.once('SIGINT', () => abort.abort());
        for (const source of sources) {
          reporter = await reporterFor(json, Boolean(o.quiet), Boolean(o.streamsDetail));
          // The HTML report (its module too) only when asked for.
          const report = o.report ? await import('../report.js') : undefined;
          const recorder: ProgressRecorder | undefined = report ? new report.ProgressRecorder() : undefined;
          const s = await send(source, target, {
            streams: c.streams,
            blockSize: c.blockSize,
            poolBuffers: c.poolBuffers,
            readers: c.readers,
            signal: abort.signal,
            onProgress: (p) => {
              recorder?.add(p);
              reporter.progress(p);
            },
            // The report's throughput curve samples every 100 ms wherever it runs (cron, a pipe);
            // without it, output off a terminal needs no more than two lines a second. (-q first:
            // asking stderr whether it is a terminal makes the stream, ~2 ms a quiet run skips.)
            progressIntervalMs: o.report || (!json && !o.quiet && process.stderr.isTTY) ? 100 : 500,
            scheduler: c.scheduler,
            digest: c.digest,
            cores: c.coresIo ? { io: c.coresIo, other: c.coresOther } : undefined,
            pin: c.pin,
            ioTimeoutMs: c.ioTimeout ? c.ioTimeout * 1000 : undefined,
            ...credentials(c),
            resume: c.resume,
            checksum: c.checksum,
            owner: c.owner || Boolean(o.archive),
            group: c.group || Boolean(o.archive),
            xattrs: c.xattrs || Boolean(o.archive),
            rate: c.rate,
            filters: readRules(rules),
            delete: c.delete,
            force: Boolean(o.force),
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
              `${JSON.stringify({ scheduler: s.scheduler, placement: s.placement, samples: s.timeline, network: s.networkTimeline }, null, 1)}\n`,
            );
          }
          if (o.report && report && recorder)
            report.writeReport(o.report, {
              summary: s,
              source,
              target,
              progress: recorder.samples(),
              command: process.argv.slice(2).join(' '),
            });
          printSummary(s, o, o.report ? { report: o.report } : {});
        }
      } catch (err) {
        reporter.done();
        fail(err, json);
      }
    },
  );
}

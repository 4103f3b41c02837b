// What commands print: progress reporters, summaries, and the one-line error (with --debug, the
// chain of causes) that ends a failed command with its documented exit status.
import { exitCodeFor, fixFor, LonghaulError, type ReceiveSummary, type SendPlan, type SendSummary } from '../sdk/index.js';
import { deletedLines, planLines } from './mirror.js';
import { program } from './program.js';
import * as fmt from './format.js';
import { barReporter, jsonReporter, loadBars, movedLine, silentReporter, summaryLines, verifiedLine, type Reporter } from './progress.js';

export interface OutputFlags {
  json?: boolean;
  /** `-q`: nothing on success (an explicit --json still prints its summary). */
  quiet?: boolean;
  /** `-v`: the scheduler, placement and other detail lines of the summary. */
  verbose?: boolean;
}

/**
 * A bar (with `--streams-detail`, one per stream too) on a terminal; JSON lines otherwise or with
 * --json; nothing with -q (with -q --json, only the summary: a script asked for that one line).
 */
export async function reporterFor(json: boolean, quiet: boolean, streamsDetail: boolean): Promise<Reporter> {
  if (quiet) return silentReporter;
  if (json || !process.stderr.isTTY) return jsonReporter(process.stdout);
  await loadBars();
  return barReporter(process.stderr, { streamsDetail });
}

/** The command being run (set before its action), for advice that names it. */
let command: string | undefined;
program.hook('preAction', (_program, action) => {
  command = action.name();
});

/** Lines for a person, on stderr, none wider than 120 columns. */
function printLines(lines: string[]): void {
  for (const line of lines) for (const part of fmt.wrap(line)) process.stderr.write(`${part}\n`);
}

/** One line: the code, what happened (and where), what to do; `--debug` adds the chain of causes. */
export function fail(err: unknown, json: boolean): never {
  const e =
    err instanceof LonghaulError ? err : new LonghaulError('E_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
  const fix = adviceFor(e);
  if (json) process.stdout.write(`${JSON.stringify({ type: 'error', code: e.code, message: e.message, fix })}\n`);
  process.stderr.write(`longhaul: ${e.code}: ${e.message}${fix ? ` (fix: ${fix})` : ''}\n`);
  if (program.opts().debug) process.stderr.write(causeChain(e));
  process.exit(exitCodeFor(e.code));
}

/** The fix for `e`, made concrete where the error says more than its code: the command that was run, the port that is taken. */
function adviceFor(e: LonghaulError): string {
  if (e.code === 'E_USAGE' && command) return `see \`longhaul ${command} --help\``;
  const listen = e.code === 'E_LISTEN' ? /^cannot listen on (.+):(\d+)( for metrics)?: (.*)$/.exec(e.message) : null;
  if (listen) {
    const flag = listen[3] ? '--metrics' : '--listen';
    if (/permission denied/.test(listen[4]!)) return `give ${flag} a port of 1024 or above, or run as root or with CAP_NET_BIND_SERVICE`;
    if (/address in use/.test(listen[4]!))
      return `give ${flag} another port, or find what holds it with \`ss -ltnp 'sport = :${listen[2]}'\``;
  }
  return fixFor(e.code);
}

function causeChain(e: unknown): string {
  const lines: string[] = [];
  for (let c: unknown = e, depth = 0; c !== undefined && c !== null && depth < 16; depth++) {
    const err = c instanceof Error ? c : undefined;
    lines.push(`${depth === 0 ? 'error' : 'caused by'}: ${err ? headed(err) : String(c)}`);
    c = err?.cause;
  }
  return `${lines.join('\n')}\n`;
}

/** An error's stack; the engine's error (the addon's) carries its code as a property, so it is put back in the first line. */
function headed(err: Error): string {
  const stack = err.stack ?? `${err.name}: ${err.message}`;
  const code = (err as { code?: unknown }).code;
  const head = `${err.name}: ${err.message}`;
  if (err instanceof LonghaulError || typeof code !== 'string' || !code.startsWith('E_') || !stack.startsWith(head)) return stack;
  return `${err.name}: ${code}: ${stack.slice(err.name.length + 2)}`;
}

export function printSummary(s: SendSummary, o: OutputFlags, extra: Record<string, unknown> = {}): void {
  const json = Boolean(o.json);
  if (json || (!o.quiet && !process.stdout.isTTY)) {
    // The timelines can hold thousands of samples: --timeline FILE writes them, the summary counts them.
    const { timeline, networkTimeline, ...rest } = s;
    process.stdout.write(
      `${JSON.stringify({ type: 'summary', ...rest, timelineSamples: timeline.length, networkSamples: networkTimeline.length, ...extra })}\n`,
    );
  }
  if (!json && !o.quiet) printLines([...summaryLines(s, Boolean(o.verbose)), ...deletedLines(s.deleted, Boolean(o.verbose))]);
}

/** A dry run's plan: a JSON line as a summary is, and the plan's lines (with -v, its paths). */
export function printPlan(p: SendPlan, o: OutputFlags): void {
  const json = Boolean(o.json);
  if (json || (!o.quiet && !process.stdout.isTTY)) process.stdout.write(`${JSON.stringify({ type: 'plan', ...p })}\n`);
  if (!json && !o.quiet) printLines(planLines(p, Boolean(o.verbose)));
}

export function printReceived(s: ReceiveSummary, what: string, o: OutputFlags): void {
  const json = Boolean(o.json);
  if (json || (!o.quiet && !process.stdout.isTTY)) process.stdout.write(`${JSON.stringify({ type: 'summary', ...s })}\n`);
  if (!json && !o.quiet)
    printLines([
      movedLine(s, what, what === 'received' ? 'here' : 'on the node'),
      ...(o.verbose
        ? [`${fmt.plural(s.blocks, 'block')}; the receiving side took ${fmt.duration(s.receiverSeconds)} from the index to its summary`]
        : []),
      verifiedLine(s),
      // What the pull did not keep is said, never dropped in silence (as send's summary does).
      ...[
        [
          s.ownerNotKept > 0 ? `owner of ${fmt.plural(s.ownerNotKept, 'file')}: ${s.ownerNotKeptWhy}` : '',
          s.xattrsNotKept > 0 ? `extended attributes of ${fmt.plural(s.xattrsNotKept, 'file')}: ${s.xattrsNotKeptWhy}` : '',
        ].filter(Boolean),
      ]
        .filter((l) => l.length > 0)
        .map((l) => `not kept: ${l.join('; ')}`),
    ]);
}

export { LonghaulError, silentReporter, type Reporter };

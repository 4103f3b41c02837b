#!/usr/bin/env node
// The longhaul command line: a thin layer over the SDK. Exit statuses are documented in
// docs/ERRORS.md (0 success, 2 usage, 3 network, 4 source, 5 refused, 6 destination I/O,
// 7 integrity, 130 cancelled, 1 anything else; `compare`: 1 when the trees differ).
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type pinoType from 'pino';

import {
  CONFIG_FILE,
  CONFIG_KEYS,
  configJsonSchema,
  describeSource,
  flagOf,
  keysFor,
  resolveConfig,
  specOf,
  type Command as CommandName,
  type Config,
  type ConfigKey,
} from '../sdk/config.js';

import {
  compareTrees,
  connect,
  copy,
  doctor,
  exitCodeFor,
  fixFor,
  get,
  LonghaulError,
  ls,
  nodeStats,
  parseSize,
  send,
  serve,
  serveMetrics,
  type NodeStats,
  type ReceiveSummary,
  type SendSummary,
  type TransferInfo,
} from '../sdk/index.js';
import { makeDemoDir, makeSampleTree, removeDir } from './sample-tree.js';
import * as fmt from './format.js';
import { barReporter, jsonReporter, silentReporter, summaryLines, verifiedLine, type Reporter } from './progress.js';
import { ProgressRecorder, writeReport } from './report.js';
import { parseListen, parseTarget } from '../sdk/target.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

function intArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in ${min}..${max}`);
    return n;
  };
}

/** `4M`, `512K`, `1048576`, `500G`. */
function sizeArg(v: string): number {
  try {
    return parseSize(v);
  } catch {
    throw new InvalidArgumentError('expected a size such as 4M, 500G or 1048576');
  }
}

/** Repeatable flags (`--peer-rate A=1G --peer-rate B=2G`) collect into a list. */
function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** Adds the config options a command takes, and `--config`. Their values are read with `settings`. */
function withConfig(cmd: Command, command: CommandName | 'config'): Command {
  for (const k of command === 'config' ? CONFIG_KEYS : keysFor(command)) {
    const spec = specOf(k);
    if (spec.arg === '') {
      // Both forms, so that neither sets a value unless given (the file and environment still count).
      cmd.addOption(new Option(flagOf(k), `${spec.description} (default ${String(spec.default)})`));
      cmd.addOption(new Option(flagOf(k).replace(/^--/, '--no-')).hideHelp());
      continue;
    }
    const o = new Option(
      `${flagOf(k)} <${spec.arg}>`,
      `${spec.description}${spec.default !== undefined ? ` (default ${String(spec.default)})` : ''}`,
    );
    if (k === 'peerRates' || k === 'copyTo') o.argParser(collect);
    cmd.addOption(o);
  }
  return cmd.option('--config <file>', `config file (default: LONGHAUL_CONFIG, else ./${CONFIG_FILE} if present)`);
}

/** The name commander stores a flag's value under. */
function attributeOf(key: ConfigKey): string {
  return flagOf(key)
    .slice(2)
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The command's effective options: defaults < config file < LONGHAUL_* < flags. */
function settings(o: Record<string, unknown>, command: CommandName | 'config'): ReturnType<typeof resolveConfig> {
  const keys = command === 'config' ? CONFIG_KEYS : keysFor(command);
  const flags = Object.fromEntries(keys.map((k) => [k, o[attributeOf(k)]]));
  return resolveConfig({ flags, configFile: o.config as string | undefined, keys });
}

/** What a client command authenticates and checks the node with: the token and TLS settings. */
function credentials(c: Config): { tokenFile?: string; tlsPin?: string; tlsCa?: string } {
  return { tokenFile: c.tokenFile, tlsPin: c.tlsPin, tlsCa: c.tlsCa };
}

interface OutputFlags {
  json?: boolean;
  quiet?: boolean;
}

/** A bar (with `--streams-detail`, one per stream too) on a terminal; JSON lines otherwise or with --json. */
function reporterFor(json: boolean, quiet: boolean, streamsDetail: boolean): Reporter {
  if (quiet) return silentReporter;
  if (json || !process.stderr.isTTY) return jsonReporter(process.stdout);
  return barReporter(process.stderr, { streamsDetail });
}

/** One line: the code, what happened (and where), what to do; `--debug` adds the chain of causes. */
function fail(err: unknown, json: boolean): never {
  const e =
    err instanceof LonghaulError ? err : new LonghaulError('E_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
  const fix = fixFor(e.code);
  if (json) process.stdout.write(`${JSON.stringify({ type: 'error', code: e.code, message: e.message, fix })}\n`);
  process.stderr.write(`longhaul: ${e.code}: ${e.message}${fix ? ` (fix: ${fix})` : ''}\n`);
  if (program.opts().debug) process.stderr.write(causeChain(e));
  process.exit(exitCodeFor(e.code));
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

function printSummary(s: SendSummary, json: boolean, extra: Record<string, unknown> = {}): void {
  if (json || !process.stdout.isTTY) {
    // The timeline can hold thousands of samples: --timeline FILE writes it, the summary counts it.
    const { timeline, ...rest } = s;
    process.stdout.write(`${JSON.stringify({ type: 'summary', ...rest, timelineSamples: timeline.length, ...extra })}\n`);
  }
  if (!json) for (const line of summaryLines(s)) process.stderr.write(`${line}\n`);
}

const program = new Command()
  .name('longhaul')
  .description('Move files and trees between machines as fast as the disk, the network and the cores allow.')
  .version(pkg.version)
  .option('--debug', 'on failure, print the chain of causes with stack traces')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

function serveCommand(): Command {
  return withConfig(
    program
      .command('serve')
      .description('run a storage node that receives transfers into ROOT (logs JSON lines to stderr)')
      .option('--no-auth', 'serve without authentication (loopback only unless --open)')
      .option('--open', 'allow --no-auth on a non-loopback address')
      .option('--rescan', 'recount stored bytes by walking the root')
      .option('--json', 'print events as JSON lines on stdout'),
    'serve',
  ).action(async (o: Record<string, unknown> & { auth: boolean; open?: boolean; rescan?: boolean; json?: boolean }) => {
    const json = Boolean(o.json);
    try {
      const c = settings(o, 'serve').values;
      if (!c.root) throw new LonghaulError('E_CONFIG', 'root is not set: give --root DIR, LONGHAUL_ROOT or "root" in the config file');
      const { default: pino } = (await import('pino')) as { default: typeof pinoType }; // only `serve` logs
      const log = pino(
        { name: 'longhaul', level: c.logLevel ?? 'info', base: { pid: process.pid } },
        pino.destination({ fd: 2, sync: true }),
      );
      const { host, port } = parseListen(c.listen ?? '127.0.0.1:7878');
      const node = await serve({
        root: c.root,
        host,
        port,
        auth: o.auth,
        tokenFile: c.tokenFile,
        openRemote: o.open,
        capacity: c.capacity,
        rescan: o.rescan,
        rate: c.rate,
        peerRates: c.peerRates,
        maxTransfers: c.maxTransfers,
        maxConnections: c.maxConnections,
        maxPerPeer: c.maxPerPeer,
        poolBuffers: c.poolBuffers,
        writers: c.writers,
        cores: c.coresIo ? { io: c.coresIo, other: c.coresOther } : undefined,
        pin: c.pin,
        idleTimeoutMs: c.idleTimeout ? c.idleTimeout * 1000 : undefined,
        resumeTtlMs: c.resumeTtl ? c.resumeTtl * 1000 : undefined,
        fsync: c.fsync,
        keepSetid: c.keepSetid,
        tls: c.tls,
        tlsCert: c.tlsCert,
        tlsKey: c.tlsKey,
        peerTlsPin: c.peerTlsPin,
        peerTlsCa: c.peerTlsCa,
        memory: c.memory,
        copyTo: c.copyTo,
      });
      const metrics = c.metrics ? await serveMetrics(node, parseListen(c.metrics).host, parseListen(c.metrics).port) : undefined;
      const auth = o.auth ? 'token' : 'none';
      const tls = node.tlsFingerprint ? { fingerprint: node.tlsFingerprint, selfSigned: node.tlsSelfSigned } : undefined;
      if (json)
        process.stdout.write(
          `${JSON.stringify({ type: 'listening', host: node.address.host, port: node.address.port, root: node.root, auth, tls, metrics: metrics?.url })}\n`,
        );
      log.info(
        { event: 'listening', url: node.url, root: node.root, auth, tls, metrics: metrics?.url },
        `listening on ${node.url}${tls ? ` with TLS, ${tls.selfSigned ? 'self-signed ' : ''}certificate ${tls.fingerprint} (clients: --tls-pin ${tls.fingerprint})` : ''}`,
      );
      // The engine's transfer events, forwarded to the log (and to stdout with --json).
      const event = (type: 'transfer:start' | 'transfer:progress' | 'transfer:end') => (t: TransferInfo) => {
        if (json && type !== 'transfer:progress') process.stdout.write(`${JSON.stringify({ type, ...t })}\n`);
        const fields = {
          event: type,
          id: t.id,
          peer: t.peer,
          direction: t.direction,
          path: t.path || '/',
          bytesDone: t.bytesDone,
          bytesTotal: t.bytesTotal,
          streams: t.streams,
          rate: Math.round(t.rate),
        };
        if (type === 'transfer:start') log.info(fields, `${t.direction} ${t.path || '/'} from ${t.peer} started`);
        else if (type === 'transfer:progress') log.debug(fields, `${t.direction} ${t.path || '/'} ${fmt.bytes(t.bytesDone)}`);
        else if (t.outcome === 'ok')
          log.info(
            { ...fields, seconds: t.seconds, outcome: t.outcome },
            `${t.direction} ${t.path || '/'} done: ${fmt.bytes(t.bytesDone)} in ${fmt.duration(t.seconds)}`,
          );
        else
          log.warn(
            { ...fields, seconds: t.seconds, outcome: t.outcome, code: t.code },
            `${t.direction} ${t.path || '/'} failed: ${t.code}`,
          );
      };
      node.on('transfer:start', event('transfer:start'));
      node.on('transfer:progress', event('transfer:progress'));
      node.on('transfer:end', event('transfer:end'));
      let stopping = false;
      const stop = (signal: string): void => {
        // The first signal drains (running transfers finish, new ones are refused); a second one stops now.
        const drain = !stopping;
        stopping = true;
        log.info(
          { event: drain ? 'draining' : 'stopping', signal },
          drain ? 'draining: waiting for running transfers (signal again to stop now)' : 'stopping',
        );
        void Promise.all([node.close({ drain }), metrics?.close()]).then(() => {
          log.info({ event: 'stopped' }, 'stopped');
          process.exit(0);
        });
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    } catch (err) {
      fail(err, json);
    }
  });
}
serveCommand();

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
        verify: c.verify,
        retries: c.retries,
        retryDelayMs: c.retryDelay === undefined ? undefined : c.retryDelay * 1000,
        onRetry: (r) => reporter.retry?.(r),
      });
      reporter.done();
      if (o.timeline) {
        writeFileSync(o.timeline, `${JSON.stringify({ scheduler: s.scheduler, placement: s.placement, samples: s.timeline }, null, 1)}\n`);
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

function printReceived(s: ReceiveSummary, what: string, json: boolean): void {
  if (json || !process.stdout.isTTY) process.stdout.write(`${JSON.stringify({ type: 'summary', ...s })}\n`);
  if (!json)
    process.stderr.write(
      `${what} ${fmt.bytes(s.bytes)} in ${fmt.plural(s.files, 'file')}, ${fmt.plural(s.dirs, 'dir')} and ${fmt.plural(s.symlinks, 'symlink')} in ${fmt.duration(s.seconds)} (${fmt.rate(s.bytesPerSecond)})\n` +
        `${verifiedLine(s)}\n`,
    );
}

async function receiveAction(
  command: 'get' | 'copy',
  o: Record<string, unknown> & OutputFlags,
  run: (c: Config, reporter: Reporter, signal: AbortSignal) => Promise<ReceiveSummary>,
): Promise<void> {
  const json = Boolean(o.json);
  let reporter: Reporter = silentReporter;
  try {
    const c = settings(o, command).values;
    reporter = reporterFor(json, Boolean(o.quiet), false);
    const abort = new AbortController();
    process.once('SIGINT', () => abort.abort());
    const s = await run(c, reporter, abort.signal);
    reporter.done();
    printReceived(s, command === 'get' ? 'received' : 'copied', json);
  } catch (err) {
    reporter.done();
    fail(err, json);
  }
}

withConfig(
  program
    .command('get')
    .description('pull a file or a directory tree from a node (the node sends)')
    .argument('<source>', 'HOST:PORT/PATH on the node; a directory P arrives as DEST/P')
    .argument('<dest>', 'local directory (created if missing)')
    .option('--json', 'print progress and the summary as JSON lines')
    .option('-q, --quiet', 'no progress output'),
  'get',
).action((source: string, dest: string, o: Record<string, unknown> & OutputFlags) =>
  receiveAction('get', o, (c, reporter, signal) =>
    get(source, dest, {
      streams: c.streams,
      blockSize: c.blockSize,
      ...credentials(c),
      verify: c.verify,
      resume: c.resume,
      keepSetid: c.keepSetid,
      signal,
      onProgress: (p) => reporter.progress(p),
      progressIntervalMs: o.json || !process.stderr.isTTY ? 500 : 100,
    }),
  ),
);

withConfig(
  program
    .command('copy')
    .description('third-party copy: have one node push to another; the data does not pass through here')
    .argument('<from>', 'HOST:PORT/SRC on the node that has the data')
    .argument('<to>', 'HOST:PORT/DEST of the receiving node, as the first node reaches it')
    .option('--json', 'print progress and the summary as JSON lines')
    .option('-q, --quiet', 'no progress output'),
  'copy',
).action((from: string, to: string, o: Record<string, unknown> & OutputFlags) =>
  receiveAction('copy', o, (c, reporter, signal) =>
    copy(from, to, {
      streams: c.streams,
      blockSize: c.blockSize,
      ...credentials(c),
      verify: c.verify,
      signal,
      onProgress: (p) => reporter.progress(p),
    }),
  ),
);

withConfig(
  program
    .command('ls')
    .description('list a directory (or name a file) on a node')
    .argument('<target>', 'HOST:PORT[/PATH]')
    .option('--json', 'one JSON object per entry'),
  'ls',
).action(async (target: string, o: Record<string, unknown> & OutputFlags) => {
  try {
    const c = settings(o, 'ls').values;
    for (const e of await ls(target, credentials(c))) {
      if (o.json) process.stdout.write(`${JSON.stringify({ ...e, mtime: e.mtime.toISOString() })}\n`);
      else
        process.stdout.write(
          `${e.kind.charAt(0)} ${e.mode.toString(8).padStart(4, '0')} ${String(e.size).padStart(14)} ${e.mtime.toISOString()} ${e.name}${e.kind === 'dir' ? '/' : ''}\n`,
        );
    }
  } catch (err) {
    fail(err, Boolean(o.json));
  }
});

/** `PATH:OFFSET:LENGTH`; the path may itself hold colons. */
function segmentArg(v: string): { path: string; offset: number; length: number } {
  const m = /^(.+):(\d+):(\d+)$/.exec(v);
  if (!m) throw new LonghaulError('E_USAGE', `segment ${JSON.stringify(v)} is not PATH:OFFSET:LENGTH`);
  return { path: m[1]!, offset: Number(m[2]), length: Number(m[3]) };
}

withConfig(
  program
    .command('readv')
    .description('read many (path, offset, length) segments from a node in one request')
    .argument('<target>', 'HOST:PORT of the node')
    .argument('<segments...>', 'PATH:OFFSET:LENGTH, relative to the node root')
    .option('-o, --out <file>', 'write the segments, concatenated, to FILE (default: stdout)')
    .option('--json', 'one JSON object per segment, its bytes in base64'),
  'readv',
).action(async (target: string, args: string[], o: Record<string, unknown> & OutputFlags & { out?: string }) => {
  const json = Boolean(o.json);
  try {
    const segments = args.map(segmentArg);
    const c = await connect(parseTarget(target), credentials(settings(o, 'readv').values));
    try {
      const results = await c.readvSettled(segments);
      if (json) {
        results.forEach((r, i) => {
          const s = segments[i]!;
          process.stdout.write(
            `${JSON.stringify({ ...s, ...(r.error ? { code: r.error.code } : { bytes: r.data!.length, data: r.data!.toString('base64') }) })}\n`,
          );
        });
      } else {
        const bad = results.findIndex((r) => r.error);
        if (bad >= 0) throw new LonghaulError(results[bad]!.error!.code, `segment ${args[bad]}: ${results[bad]!.error!.message}`);
        const all = Buffer.concat(results.map((r) => r.data!));
        if (o.out) writeFileSync(o.out, all);
        else process.stdout.write(all);
      }
    } finally {
      c.close();
    }
  } catch (err) {
    fail(err, json);
  }
});

function statsLines(s: NodeStats): string[] {
  const lines = [
    `node ${s.listen}, root ${s.root}, auth ${s.auth ? 'token' : 'none'}`,
    `stored ${fmt.bytes(s.stored)}${s.capacity !== null ? ` of ${fmt.bytes(s.capacity)} (${fmt.bytes(s.free ?? 0)} free)` : ''}${s.reserved ? `, ${fmt.bytes(s.reserved)} reserved` : ''}${s.parts ? `; ${fmt.bytes(s.partsBytes)} of it in ${fmt.count(s.parts)} temporary files (running pushes, and failed ones kept for a resume)` : ''}`,
    `transfers: ${s.active} active, ${s.completed} done, ${s.failed} failed; ${fmt.bytes(s.bytesIn)} in, ${fmt.bytes(s.bytesOut)} out`,
    `pool: ${s.pool.buffers - s.pool.available} of ${s.pool.buffers} buffers of ${fmt.bytes(s.pool.bufferBytes)} in use${s.pool.locked ? ', locked' : ''}`,
    `memory: ${fmt.bytes(s.memory.held)} of ${fmt.bytes(s.memory.budget)} held (pools and indexes)`,
    `readv: ${fmt.count(s.readv.requests)} requests, ${fmt.count(s.readv.segments)} segments, ${fmt.bytes(s.readv.bytes)}`,
    `files named: ${fmt.count(s.filesLinked)} linked in (O_TMPFILE), ${fmt.count(s.filesRenamed)} renamed${s.lastFileCreation ? `; last push: ${s.lastFileCreation}` : ''}`,
  ];
  for (const l of s.limits)
    lines.push(`limit ${l.scope === 'total' ? 'total' : `peer ${l.peer}`}: ${fmt.rate(l.rate)}, ${(l.utilisation * 100).toFixed(0)}% used`);
  for (const p of s.peers) lines.push(`peer ${p.peer}: ${fmt.bytes(p.bytesIn)} in, ${fmt.bytes(p.bytesOut)} out`);
  const errors = Object.entries(s.errors);
  if (errors.length) lines.push(`errors: ${errors.map(([c, n]) => `${c} ${n}`).join(', ')}`);
  for (const t of s.transfers)
    lines.push(
      `  #${t.id} ${t.direction} ${t.path || '/'} ${t.peer} ${fmt.bytes(t.bytesDone)} / ${fmt.bytes(t.bytesTotal)} ${fmt.rate(t.rate)} ${t.streams} streams, ${fmt.duration(t.seconds)}`,
    );
  return lines;
}

withConfig(
  program
    .command('stats')
    .description("print a node's statistics and active transfers")
    .argument('<target>', 'HOST:PORT of the node')
    .option('--json', 'the statistics as one JSON object'),
  'stats',
).action(async (target: string, o: Record<string, unknown> & OutputFlags) => {
  try {
    const s = await nodeStats(target, credentials(settings(o, 'stats').values));
    if (o.json) process.stdout.write(`${JSON.stringify(s)}\n`);
    else for (const line of statsLines(s)) process.stdout.write(`${line}\n`);
  } catch (err) {
    fail(err, Boolean(o.json));
  }
});

program
  .command('compare')
  .description(
    'compare two local trees (or two files) as a transfer should leave them: entries, kinds, sizes, bytes, modes, mtimes, link targets (exit 1 when they differ)',
  )
  .argument('<expected>', 'the source: a directory, or one file')
  .argument('<actual>', 'the copy')
  .option('--no-dir-mtimes', 'leave directory mtimes out')
  .option('--json', 'one JSON object per difference, then a summary object')
  .action(async (expected: string, actual: string, o: { dirMtimes: boolean; json?: boolean }) => {
    const json = Boolean(o.json);
    try {
      // The roots may be symlinks (as with diff -r); entries below are not followed.
      for (const root of [expected, actual]) {
        if (!(await stat(root).catch(() => undefined))) throw new LonghaulError('E_NOT_FOUND', `not found: ${JSON.stringify(root)}`);
      }
      const diffs = await compareTrees(expected, actual, { dirMtimes: o.dirMtimes });
      for (const d of diffs) {
        if (json) process.stdout.write(`${JSON.stringify({ type: 'difference', ...d })}\n`);
        else process.stdout.write(`${d.what} ${d.path}${d.expected === undefined ? '' : `: expected ${d.expected}, found ${d.actual}`}\n`);
      }
      if (json) process.stdout.write(`${JSON.stringify({ type: 'summary', identical: diffs.length === 0, differences: diffs.length })}\n`);
      else
        process.stderr.write(
          diffs.length === 0 ? 'identical (entries, bytes, modes, mtimes, link targets)\n' : `${fmt.plural(diffs.length, 'difference')}\n`,
        );
      // As diff and cmp: 0 the same, 1 different; errors keep their own statuses (docs/ERRORS.md).
      process.exitCode = diffs.length === 0 ? 0 : 1;
    } catch (err) {
      fail(err, json);
    }
  });

program
  .command('doctor')
  .description('probe each fast path and limit (sendfile, O_TMPFILE, mlock, pinning, NUMA, socket buffers, open files)')
  .option('--json', 'print one JSON object per check')
  .action((o: { json?: boolean }) => {
    for (const c of doctor()) {
      if (o.json) process.stdout.write(`${JSON.stringify(c)}\n`);
      else process.stdout.write(`${c.ok ? 'ok ' : 'OFF'} ${c.name.padEnd(15)} ${c.detail}${c.advice ? `\n    -> ${c.advice}` : ''}\n`);
    }
  });

withConfig(
  program
    .command('demo')
    .description('generate a sample tree, start a node on 127.0.0.1, send the tree to it and verify it')
    .option('--files <n>', 'small files in the sample tree', intArg(0, 10_000_000), 5000)
    .option('--big <size>', 'size of the large file', sizeArg, 256 << 20)
    .option('--dir <dir>', 'where to make the temporary directory (default: the OS temp dir)')
    .option('--keep', 'keep the generated tree and the received copy')
    .option('--report <file>', 'write an HTML report of the transfer to FILE')
    .option('--json', 'print progress and the summary as JSON lines'),
  'demo',
).action(
  async (o: Record<string, unknown> & { files: number; big: number; dir?: string; keep?: boolean; report?: string; json?: boolean }) => {
    const json = Boolean(o.json);
    let streams: number | undefined;
    try {
      streams = settings(o, 'demo').values.streams;
    } catch (err) {
      fail(err, json);
    }
    const work = await makeDemoDir(o.dir);
    const log = (s: string): void => {
      if (!json) process.stderr.write(`${s}\n`);
    };
    try {
      const src = join(work, 'sample');
      log(`generating a sample tree in ${src}: one ${fmt.bytes(o.big)} file and ${fmt.count(o.files)} small files`);
      await makeSampleTree(src, { files: o.files, bigBytes: o.big });
      // A fresh random token for this run: the demo shows the authenticated handshake too.
      const token = randomBytes(24).toString('base64');
      const node = await serve({ root: join(work, 'node-root'), host: '127.0.0.1', port: 0, token });
      log(`node listening on ${node.url}, root ${node.root}`);
      const reporter = reporterFor(json, false, false);
      const recorder = new ProgressRecorder();
      let s: SendSummary;
      try {
        s = await send(src, `${node.url}/received`, {
          token,
          streams,
          onProgress: (p) => {
            recorder.add(p);
            reporter.progress(p);
          },
        });
      } finally {
        reporter.done();
        await node.close();
      }
      const diffs = await compareTrees(src, join(node.root, 'received', 'sample'));
      if (diffs.length > 0) {
        throw new LonghaulError(
          'E_VERIFY',
          `the received tree differs from the source in ${diffs.length} places, first: ${JSON.stringify(diffs[0])}`,
        );
      }
      if (o.report)
        writeReport(o.report, {
          summary: s,
          source: src,
          target: `${node.url}/received`,
          progress: recorder.samples(),
          command: process.argv.slice(2).join(' '),
        });
      printSummary(s, json, { verified: true, ...(o.report ? { report: o.report } : {}) });
      log(
        `verified: ${fmt.count(s.files)} files, ${fmt.count(s.dirs)} dirs and ${fmt.count(s.symlinks)} symlinks identical (bytes, modes, mtimes, link targets)`,
      );
      if (o.keep) log(`kept ${work}`);
    } catch (err) {
      fail(err, json);
    } finally {
      if (!o.keep) await removeDir(work);
    }
  },
);

withConfig(
  program
    .command('config')
    .description('print the effective configuration and where each value came from (default, file, environment, flag)')
    .option('--schema', "print the config file's JSON Schema instead")
    .option('--json', 'one JSON object: key -> { value, source }'),
  'config',
).action((o: Record<string, unknown> & { schema?: boolean; json?: boolean }) => {
  const json = Boolean(o.json);
  if (o.schema) {
    process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
    return;
  }
  try {
    const { values, sources, file } = settings(o, 'config');
    if (json) {
      const out = Object.fromEntries(
        CONFIG_KEYS.map((k) => [
          k,
          { value: values[k] ?? null, source: sources[k] ? describeSource(sources[k]) : 'unset (engine default)' },
        ]),
      );
      process.stdout.write(`${JSON.stringify({ file: file ?? null, options: out })}\n`);
      return;
    }
    process.stdout.write(`config file: ${file ?? `none (no --config, LONGHAUL_CONFIG or ./${CONFIG_FILE})`}\n`);
    const width = Math.max(...CONFIG_KEYS.map((k) => k.length));
    for (const k of CONFIG_KEYS) {
      const v = values[k];
      const shown = v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v);
      process.stdout.write(
        `${k.padEnd(width)}  ${shown.padEnd(24)} ${sources[k] ? describeSource(sources[k]) : 'unset (engine default)'}\n`,
      );
    }
  } catch (err) {
    fail(err, json);
  }
});

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  fail(err, false);
}

#!/usr/bin/env node
// The longhaul command line: a thin layer over the SDK. Exit statuses are documented in
// docs/ERRORS.md (0 success, 2 usage, 3 network, 4 source, 5 refused, 6 destination I/O,
// 7 integrity, 130 cancelled, 1 anything else).
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Command, CommanderError, InvalidArgumentError } from 'commander';

import {
  compareTrees,
  connect,
  copy,
  doctor,
  exitCodeFor,
  get,
  LonghaulError,
  ls,
  nodeStats,
  parseSize,
  send,
  serve,
  serveMetrics,
  type NodeStats,
  type PinMode,
  type ReceiveSummary,
  type SchedulerName,
  type SendSummary,
  type TransferInfo,
} from './index.js';
import { makeDemoDir, makeSampleTree, removeDir } from './demo.js';
import * as fmt from './format.js';
import { barReporter, jsonReporter, silentReporter, summaryLines, type Reporter } from './progress.js';
import { parseListen, parseTarget } from './target.js';

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

/** `--peer-rate 10.0.0.7=200M`, repeatable. */
function peerRateArg(v: string, prev: Record<string, number> = {}): Record<string, number> {
  const i = v.lastIndexOf('=');
  if (i <= 0) throw new InvalidArgumentError('expected PEER=RATE, e.g. 10.0.0.7=200M');
  return { ...prev, [v.slice(0, i)]: sizeArg(v.slice(i + 1)) };
}

function choiceArg(choices: string[]) {
  return (v: string): string => {
    if (!choices.includes(v)) throw new InvalidArgumentError(`expected one of ${choices.join(', ')}`);
    return v;
  };
}

function pinArg(v: string): PinMode {
  return choiceArg(['auto', 'always', 'never'])(v) as PinMode;
}

interface AuthFlags {
  tokenFile?: string;
}

interface ServeFlags extends AuthFlags {
  root: string;
  listen: string;
  auth: boolean;
  open?: boolean;
  capacity?: number;
  rescan?: boolean;
  rate?: number;
  peerRate?: Record<string, number>;
  maxTransfers?: number;
  metrics?: string;
  poolBuffers?: number;
  writers?: number;
  coresIo?: string;
  coresOther?: string;
  pin?: PinMode;
  idleTimeout?: number;
  json?: boolean;
}

interface SendFlags extends AuthFlags {
  streams?: number;
  blockSize?: number;
  scheduler?: string;
  digest?: string;
  coresIo?: string;
  coresOther?: string;
  pin?: PinMode;
  timeline?: string;
  json?: boolean;
  quiet?: boolean;
}

function reporterFor(json: boolean, quiet: boolean): Reporter {
  if (quiet) return silentReporter;
  if (json || !process.stderr.isTTY) return jsonReporter(process.stdout);
  return barReporter(process.stderr);
}

function fail(err: unknown, json: boolean): never {
  const e = err instanceof LonghaulError ? err : new LonghaulError('E_INTERNAL', err instanceof Error ? err.message : String(err));
  if (json) process.stdout.write(`${JSON.stringify({ type: 'error', code: e.code, message: e.message })}\n`);
  process.stderr.write(`longhaul: ${e.code}: ${e.message}\n`);
  process.exit(exitCodeFor(e.code));
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
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

program
  .command('serve')
  .description('run a storage node that receives transfers into ROOT')
  .requiredOption('--root <dir>', 'directory to store into (created if missing)')
  .option('--listen <host:port>', 'address to listen on', '127.0.0.1:7878')
  .option('--pool-buffers <n>', 'buffers in the node pool (x 4 MiB)', intArg(1, 4096))
  .option('--writers <n>', 'disk-writer threads per transfer', intArg(1, 256))
  .option('--cores-io <cpus>', 'CPUs for I/O threads, e.g. 2-7 (default: near the NIC and the disk)')
  .option('--cores-other <cpus>', 'CPUs for other work, e.g. 0-1')
  .option('--pin <mode>', 'auto, always or never', pinArg)
  .option('--idle-timeout <seconds>', 'fail a transfer whose sender sends nothing for this long (default 60)', intArg(1, 86_400))
  .option('--token-file <file>', 'file holding the shared token (default: LONGHAUL_TOKEN or LONGHAUL_TOKEN_FILE)')
  .option('--no-auth', 'serve without authentication (loopback only unless --open)')
  .option('--open', 'allow --no-auth on a non-loopback address')
  .option('--capacity <size>', 'bytes the node may store, e.g. 500G (default: no limit)', sizeArg)
  .option('--rescan', 'recount stored bytes by walking the root')
  .option('--rate <size>', 'bytes per second for all transfers together, e.g. 1G', sizeArg)
  .option('--peer-rate <peer=size>', 'bytes per second for one peer address, e.g. 10.0.0.7=200M (repeatable)', peerRateArg)
  .option('--max-transfers <n>', 'transfers at once (default 32)', intArg(1, 100_000))
  .option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics')
  .option('--json', 'print events as JSON lines')
  .action(async (o: ServeFlags) => {
    const json = Boolean(o.json);
    try {
      const { host, port } = parseListen(o.listen);
      const node = await serve({
        root: o.root,
        host,
        port,
        auth: o.auth,
        tokenFile: o.tokenFile,
        openRemote: o.open,
        capacity: o.capacity,
        rescan: o.rescan,
        rate: o.rate,
        peerRates: o.peerRate,
        maxTransfers: o.maxTransfers,
        poolBuffers: o.poolBuffers,
        writers: o.writers,
        cores: o.coresIo ? { io: o.coresIo, other: o.coresOther } : undefined,
        pin: o.pin,
        idleTimeoutMs: o.idleTimeout ? o.idleTimeout * 1000 : undefined,
      });
      const metrics = o.metrics ? await serveMetrics(node, parseListen(o.metrics).host, parseListen(o.metrics).port) : undefined;
      const auth = o.auth ? 'token' : 'none';
      if (json)
        process.stdout.write(
          `${JSON.stringify({ type: 'listening', host: node.address.host, port: node.address.port, root: node.root, auth, metrics: metrics?.url })}\n`,
        );
      else {
        process.stderr.write(`longhaul node listening on ${node.url}, root ${node.root}, auth ${auth}\n`);
        if (metrics) process.stderr.write(`metrics at ${metrics.url}\n`);
      }
      const event = (type: string) => (t: TransferInfo) => {
        if (json) process.stdout.write(`${JSON.stringify({ type, ...t })}\n`);
        else if (type === 'transfer:end')
          process.stderr.write(
            `${t.outcome === 'ok' ? 'done' : `FAILED ${t.code}`}: ${t.direction} ${t.path || '/'} ${t.peer} ${fmt.bytes(t.bytesDone)} in ${fmt.duration(t.seconds)}\n`,
          );
      };
      node.on('transfer:start', event('transfer:start'));
      node.on('transfer:end', event('transfer:end'));
      let stopping = false;
      const stop = (): void => {
        // The first signal drains (running transfers finish, new ones are refused); a second one stops now.
        const drain = !stopping;
        stopping = true;
        if (!json) process.stderr.write(drain ? 'draining: waiting for running transfers (signal again to stop now)\n' : 'stopping\n');
        void Promise.all([node.close({ drain }), metrics?.close()]).then(() => process.exit(0));
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    } catch (err) {
      fail(err, json);
    }
  });

program
  .command('send')
  .description('send a file or a directory tree to a node')
  .argument('<source>', 'file or directory to send')
  .argument('<target>', 'HOST:PORT[/DEST] of the node; a directory SRC arrives as DEST/SRC')
  .option('--streams <n>', 'parallel TCP data streams (default 2)', intArg(1, 256))
  .option('--block-size <size>', 'block size, e.g. 4M (default 4M)', sizeArg)
  .option('--scheduler <name>', 'pipelined, adaptive or auto (default auto: probes both)', choiceArg(['pipelined', 'adaptive', 'auto']))
  .option('--digest <name>', 'none, or blake3: a BLAKE3 of every block, checked by the node', choiceArg(['none', 'blake3']))
  .option('--cores-io <cpus>', 'CPUs for I/O threads, e.g. 2-7 (default: near the NIC and the disk)')
  .option('--cores-other <cpus>', 'CPUs for other work, e.g. 0-1')
  .option('--pin <mode>', 'auto, always or never', pinArg)
  .option('--timeline <file>', 'write the thread-state timeline (JSON) to FILE')
  .option('--token-file <file>', "file holding the node's token (default: LONGHAUL_TOKEN or LONGHAUL_TOKEN_FILE)")
  .option('--json', 'print progress and the summary as JSON lines')
  .option('-q, --quiet', 'no progress output')
  .action(async (source: string, target: string, o: SendFlags) => {
    const json = Boolean(o.json);
    const reporter = reporterFor(json, Boolean(o.quiet));
    const abort = new AbortController();
    process.once('SIGINT', () => abort.abort());
    try {
      const s = await send(source, target, {
        streams: o.streams,
        blockSize: o.blockSize,
        signal: abort.signal,
        onProgress: (p) => reporter.progress(p),
        progressIntervalMs: json || !process.stderr.isTTY ? 500 : 100,
        scheduler: o.scheduler as SchedulerName | undefined,
        digest: o.digest as 'none' | 'blake3' | undefined,
        cores: o.coresIo ? { io: o.coresIo, other: o.coresOther } : undefined,
        pin: o.pin,
        tokenFile: o.tokenFile,
      });
      reporter.done();
      if (o.timeline) {
        writeFileSync(o.timeline, `${JSON.stringify({ scheduler: s.scheduler, placement: s.placement, samples: s.timeline }, null, 1)}\n`);
      }
      printSummary(s, json);
    } catch (err) {
      reporter.done();
      fail(err, json);
    }
  });

function printReceived(s: ReceiveSummary, what: string, json: boolean): void {
  if (json || !process.stdout.isTTY) process.stdout.write(`${JSON.stringify({ type: 'summary', ...s })}\n`);
  if (!json)
    process.stderr.write(
      `${what} ${fmt.bytes(s.bytes)} in ${fmt.plural(s.files, 'file')}, ${fmt.plural(s.dirs, 'dir')} and ${fmt.plural(s.symlinks, 'symlink')} in ${fmt.duration(s.seconds)} (${fmt.rate(s.bytesPerSecond)})\n`,
    );
}

interface TransferFlags extends AuthFlags {
  streams?: number;
  blockSize?: number;
  json?: boolean;
  quiet?: boolean;
}

program
  .command('get')
  .description('pull a file or a directory tree from a node (the node sends)')
  .argument('<source>', 'HOST:PORT/PATH on the node; a directory P arrives as DEST/P')
  .argument('<dest>', 'local directory (created if missing)')
  .option('--streams <n>', 'parallel TCP data streams (default 2)', intArg(1, 256))
  .option('--block-size <size>', 'block size, e.g. 4M (default 4M)', sizeArg)
  .option('--token-file <file>', "file holding the node's token (default: LONGHAUL_TOKEN or LONGHAUL_TOKEN_FILE)")
  .option('--json', 'print progress and the summary as JSON lines')
  .option('-q, --quiet', 'no progress output')
  .action(async (source: string, dest: string, o: TransferFlags) => {
    const json = Boolean(o.json);
    const reporter = reporterFor(json, Boolean(o.quiet));
    const abort = new AbortController();
    process.once('SIGINT', () => abort.abort());
    try {
      const s = await get(source, dest, {
        streams: o.streams,
        blockSize: o.blockSize,
        tokenFile: o.tokenFile,
        signal: abort.signal,
        onProgress: (p) => reporter.progress(p),
        progressIntervalMs: json || !process.stderr.isTTY ? 500 : 100,
      });
      reporter.done();
      printReceived(s, 'received', json);
    } catch (err) {
      reporter.done();
      fail(err, json);
    }
  });

program
  .command('copy')
  .description('third-party copy: have one node push to another; the data does not pass through here')
  .argument('<from>', 'HOST:PORT/SRC on the node that has the data')
  .argument('<to>', 'HOST:PORT/DEST of the receiving node, as the first node reaches it')
  .option('--streams <n>', 'parallel TCP data streams (default 2)', intArg(1, 256))
  .option('--block-size <size>', 'block size, e.g. 4M (default 4M)', sizeArg)
  .option('--token-file <file>', 'file holding the token both nodes share (default: LONGHAUL_TOKEN or LONGHAUL_TOKEN_FILE)')
  .option('--json', 'print progress and the summary as JSON lines')
  .option('-q, --quiet', 'no progress output')
  .action(async (from: string, to: string, o: TransferFlags) => {
    const json = Boolean(o.json);
    const reporter = reporterFor(json, Boolean(o.quiet));
    const abort = new AbortController();
    process.once('SIGINT', () => abort.abort());
    try {
      const s = await copy(from, to, {
        streams: o.streams,
        blockSize: o.blockSize,
        tokenFile: o.tokenFile,
        signal: abort.signal,
        onProgress: (p) => reporter.progress(p),
      });
      reporter.done();
      printReceived(s, 'copied', json);
    } catch (err) {
      reporter.done();
      fail(err, json);
    }
  });

program
  .command('ls')
  .description('list a directory (or name a file) on a node')
  .argument('<target>', 'HOST:PORT[/PATH]')
  .option('--token-file <file>', "file holding the node's token (default: LONGHAUL_TOKEN or LONGHAUL_TOKEN_FILE)")
  .option('--json', 'one JSON object per entry')
  .action(async (target: string, o: AuthFlags & { json?: boolean }) => {
    try {
      for (const e of await ls(target, { tokenFile: o.tokenFile })) {
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

program
  .command('readv')
  .description('read many (path, offset, length) segments from a node in one request')
  .argument('<target>', 'HOST:PORT of the node')
  .argument('<segments...>', 'PATH:OFFSET:LENGTH, relative to the node root')
  .option('--token-file <file>', "file holding the node's token (default: LONGHAUL_TOKEN or LONGHAUL_TOKEN_FILE)")
  .option('-o, --out <file>', 'write the segments, concatenated, to FILE (default: stdout)')
  .option('--json', 'one JSON object per segment, its bytes in base64')
  .action(async (target: string, args: string[], o: AuthFlags & { out?: string; json?: boolean }) => {
    const json = Boolean(o.json);
    try {
      const segments = args.map(segmentArg);
      const c = await connect(parseTarget(target), { tokenFile: o.tokenFile });
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
    `stored ${fmt.bytes(s.stored)}${s.capacity !== null ? ` of ${fmt.bytes(s.capacity)} (${fmt.bytes(s.free ?? 0)} free)` : ''}${s.reserved ? `, ${fmt.bytes(s.reserved)} reserved` : ''}`,
    `transfers: ${s.active} active, ${s.completed} done, ${s.failed} failed; ${fmt.bytes(s.bytesIn)} in, ${fmt.bytes(s.bytesOut)} out`,
    `pool: ${s.pool.buffers - s.pool.available} of ${s.pool.buffers} buffers of ${fmt.bytes(s.pool.bufferBytes)} in use${s.pool.locked ? ', locked' : ''}`,
    `readv: ${fmt.count(s.readv.requests)} requests, ${fmt.count(s.readv.segments)} segments, ${fmt.bytes(s.readv.bytes)}`,
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

program
  .command('stats')
  .description("print a node's statistics and active transfers")
  .argument('<target>', 'HOST:PORT of the node')
  .option('--token-file <file>', "file holding the node's token (default: LONGHAUL_TOKEN or LONGHAUL_TOKEN_FILE)")
  .option('--json', 'the statistics as one JSON object')
  .action(async (target: string, o: AuthFlags & { json?: boolean }) => {
    try {
      const s = await nodeStats(target, { tokenFile: o.tokenFile });
      if (o.json) process.stdout.write(`${JSON.stringify(s)}\n`);
      else for (const line of statsLines(s)) process.stdout.write(`${line}\n`);
    } catch (err) {
      fail(err, Boolean(o.json));
    }
  });

program
  .command('doctor')
  .description('probe each fast path and limit (sendfile, mlock, pinning, NUMA, socket buffers, open files)')
  .option('--json', 'print one JSON object per check')
  .action((o: { json?: boolean }) => {
    for (const c of doctor()) {
      if (o.json) process.stdout.write(`${JSON.stringify(c)}\n`);
      else process.stdout.write(`${c.ok ? 'ok ' : 'OFF'} ${c.name.padEnd(15)} ${c.detail}${c.advice ? `\n    -> ${c.advice}` : ''}\n`);
    }
  });

program
  .command('demo')
  .description('generate a sample tree, start a node on 127.0.0.1, send the tree to it and verify it')
  .option('--files <n>', 'small files in the sample tree', intArg(0, 10_000_000), 5000)
  .option('--big <size>', 'size of the large file', sizeArg, 256 << 20)
  .option('--streams <n>', 'parallel TCP data streams (default 2)', intArg(1, 256))
  .option('--dir <dir>', 'where to make the temporary directory (default: the OS temp dir)')
  .option('--keep', 'keep the generated tree and the received copy')
  .option('--json', 'print progress and the summary as JSON lines')
  .action(async (o: { files: number; big: number; streams?: number; dir?: string; keep?: boolean; json?: boolean }) => {
    const json = Boolean(o.json);
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
      const reporter = reporterFor(json, false);
      let s: SendSummary;
      try {
        s = await send(src, `${node.url}/received`, { token, streams: o.streams, onProgress: (p) => reporter.progress(p) });
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
      printSummary(s, json, { verified: true });
      log(
        `verified: ${fmt.count(s.files)} files, ${fmt.count(s.dirs)} dirs and ${fmt.count(s.symlinks)} symlinks identical (bytes, modes, mtimes, link targets)`,
      );
      if (o.keep) log(`kept ${work}`);
    } catch (err) {
      fail(err, json);
    } finally {
      if (!o.keep) await removeDir(work);
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

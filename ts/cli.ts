#!/usr/bin/env node
// The longhaul command line: a thin layer over the SDK. Exit statuses are documented in
// docs/ERRORS.md (0 success, 2 usage, 3 network, 4 source, 5 refused, 6 destination I/O,
// 7 integrity, 130 cancelled, 1 anything else).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Command, CommanderError, InvalidArgumentError } from 'commander';

import {
  compareTrees,
  doctor,
  exitCodeFor,
  LonghaulError,
  send,
  serve,
  type PinMode,
  type SchedulerName,
  type SendSummary,
} from './index.js';
import { makeDemoDir, makeSampleTree, removeDir } from './demo.js';
import * as fmt from './format.js';
import { barReporter, jsonReporter, silentReporter, summaryLines, type Reporter } from './progress.js';
import { parseListen } from './target.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

function intArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in ${min}..${max}`);
    return n;
  };
}

/** `4M`, `512K`, `1048576`. */
function sizeArg(v: string): number {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(v.trim());
  if (!m) throw new InvalidArgumentError('expected a size such as 4M or 1048576');
  const mult = { k: 1 << 10, m: 1 << 20, g: 1 << 30 }[(m[2] ?? '').charAt(0).toLowerCase()] ?? 1;
  return Number(m[1]) * mult;
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

interface ServeFlags {
  root: string;
  listen: string;
  poolBuffers?: number;
  writers?: number;
  coresIo?: string;
  coresOther?: string;
  pin?: PinMode;
  idleTimeout?: number;
  json?: boolean;
}

interface SendFlags {
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
  .option('--json', 'print events as JSON lines')
  .action(async (o: ServeFlags) => {
    const json = Boolean(o.json);
    try {
      const { host, port } = parseListen(o.listen);
      const node = await serve({
        root: o.root,
        host,
        port,
        poolBuffers: o.poolBuffers,
        writers: o.writers,
        cores: o.coresIo ? { io: o.coresIo, other: o.coresOther } : undefined,
        pin: o.pin,
        idleTimeoutMs: o.idleTimeout ? o.idleTimeout * 1000 : undefined,
      });
      if (json)
        process.stdout.write(
          `${JSON.stringify({ type: 'listening', host: node.address.host, port: node.address.port, root: node.root })}\n`,
        );
      else process.stderr.write(`longhaul node listening on ${node.url}, root ${node.root}\n`);
      const stop = (): void => {
        void node.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
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
      const node = await serve({ root: join(work, 'node-root'), host: '127.0.0.1', port: 0 });
      log(`node listening on ${node.url}, root ${node.root}`);
      const reporter = reporterFor(json, false);
      let s: SendSummary;
      try {
        s = await send(src, `${node.url}/received`, { streams: o.streams, onProgress: (p) => reporter.progress(p) });
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

// `longhaul bench HOST:PORT`: generated data sent to a node that checks and discards it (no disk
// at either end), with the rate, both ends' CPU per GiB and what limited the run.
import { bench, BENCH_SIZE, LonghaulError, type BenchSummary } from '../../sdk/index.js';
import { LIMITS } from '../../sdk/defaults.js';
import * as fmt from '../format.js';
import { credentials, intArg, settings, sizeArg, withConfig } from '../options.js';
import { fail, reporterFor, silentReporter, type OutputFlags, type Reporter } from '../output.js';
import { program } from '../program.js';

function cpuText(c: { seconds: number; perGiB: number } | null): string {
  return c ? `${c.seconds.toFixed(2)} s (${c.perGiB.toFixed(3)} s/GiB)` : 'not reported (an older node)';
}

function benchLines(s: BenchSummary): string[] {
  const checked =
    s.verify === 'none'
      ? 'no checksum made or checked (--verify none)'
      : `${s.digest === 'blake3' ? 'XXH3 and BLAKE3' : 'XXH3'} of every block made here and checked by the node`;
  return [
    `bench: ${fmt.bytes(s.bytes)} in ${fmt.duration(s.seconds)}, ${fmt.rate(s.bytesPerSecond)} (${s.gbitPerSecond.toFixed(2)} Gbit/s), ${fmt.plural(s.streams, 'stream')}, ${s.congestion}; ${checked}, nothing read or written on disk`,
    `cpu: client ${cpuText(s.clientCpu)}, node ${cpuText(s.nodeCpu)}`,
    `limited by: ${s.verdict.limit} (${s.verdict.evidence})`,
  ];
}

export function register(): void {
  // The node's credentials (token file, TLS) come from the config as for `stats`; the bench's
  // own settings are flags only, so a config file written for `send` does not change a bench.
  withConfig(
    program
      .command('bench')
      .description('send generated data to a node that checks and discards it: the engine and the network without disks')
      .argument('<target>', 'HOST[:PORT] of the node')
      .option('--size <bytes>', `bytes to send, e.g. 512M or 10G (default ${fmt.bytes(BENCH_SIZE)})`, sizeArg)
      .option('--streams <n>', 'parallel TCP data streams (default 2, as send)', intArg(LIMITS.streams.min, LIMITS.streams.max))
      .option('--block-size <bytes>', 'block size (default 1M, as send)', sizeArg)
      .option('--digest <name>', 'none, or blake3: a BLAKE3 of every block besides its XXH3, checked by the node')
      .option('--verify <mode>', 'block (an XXH3 of every block, made here and checked by the node) or none (no checksum at all)')
      .option('--scheduler <name>', 'pipelined, adaptive or auto (default auto)')
      .option('--congestion <name>', 'TCP congestion control of the data streams: auto (default), system, or a name such as cubic')
      .option('--rate <bytes>', 'bytes per second for all streams together, e.g. 200M (default no limit)', sizeArg)
      .option('--json', 'print progress and the summary as JSON lines')
      .option('-q, --quiet', 'print nothing on success (errors still go to stderr)'),
    'stats',
  ).action(
    async (
      target: string,
      o: Record<string, unknown> &
        OutputFlags & {
          size?: number;
          streams?: number;
          blockSize?: number;
          digest?: string;
          verify?: string;
          scheduler?: string;
          congestion?: string;
          rate?: number;
        },
    ) => {
      const json = Boolean(o.json);
      let reporter: Reporter = silentReporter;
      try {
        if (o.digest !== undefined && o.digest !== 'none' && o.digest !== 'blake3')
          throw new LonghaulError('E_USAGE', `--digest must be none or blake3, not ${JSON.stringify(o.digest)}`);
        if (o.verify !== undefined && o.verify !== 'block' && o.verify !== 'none')
          throw new LonghaulError('E_USAGE', `--verify must be block or none, not ${JSON.stringify(o.verify)}`);
        if (o.verify === 'none' && o.digest === 'blake3')
          throw new LonghaulError('E_USAGE', '--verify none makes no digest: drop --digest blake3');
        if (o.scheduler !== undefined && !['pipelined', 'adaptive', 'auto'].includes(o.scheduler))
          throw new LonghaulError('E_USAGE', `--scheduler must be pipelined, adaptive or auto, not ${JSON.stringify(o.scheduler)}`);
        if (o.size !== undefined && o.size < 1) throw new LonghaulError('E_USAGE', '--size must be at least 1 byte');
        const bs = LIMITS.blockSize;
        if (o.blockSize !== undefined && (o.blockSize < bs.min || o.blockSize > bs.max))
          throw new LonghaulError('E_USAGE', `--block-size must be in ${fmt.bytes(bs.min)}..${fmt.bytes(bs.max)}, not ${o.blockSize}`);
        const c = settings(o, 'stats').values;
        const abort = new AbortController();
        process.once('SIGINT', () => abort.abort());
        reporter = await reporterFor(json, Boolean(o.quiet), false);
        const s = await bench(target, {
          size: o.size,
          streams: o.streams,
          blockSize: o.blockSize,
          digest: o.digest as 'none' | 'blake3' | undefined,
          verify: o.verify as 'block' | 'none' | undefined,
          scheduler: o.scheduler as 'pipelined' | 'adaptive' | 'auto' | undefined,
          congestion: o.congestion,
          rate: o.rate,
          signal: abort.signal,
          onProgress: (p) => reporter.progress(p),
          progressIntervalMs: json || !process.stderr.isTTY ? 500 : 100,
          ...credentials(c),
        });
        // The bar ends full: the one "file" is the bench's bytes.
        reporter.done({
          bytes: s.bytes,
          bytesMoved: s.bytes,
          bytesAlready: 0,
          files: 1,
          dirs: 0,
          symlinks: 0,
          blocks: s.blocks,
          seconds: s.seconds,
          receiverSeconds: 0,
          bytesPerSecond: s.bytesPerSecond,
          verify: 'block',
          verifiedFiles: 0,
        });
        if (json || (!o.quiet && !process.stdout.isTTY)) process.stdout.write(`${JSON.stringify({ type: 'summary', ...s })}\n`);
        if (!json && !o.quiet) for (const line of benchLines(s)) for (const part of fmt.wrap(line)) process.stderr.write(`${part}\n`);
      } catch (err) {
        reporter.done();
        fail(err, json);
      }
    },
  );
}

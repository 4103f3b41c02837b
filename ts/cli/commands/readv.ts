// `longhaul readv`: many (path, offset, length) segments from a node in one request.
import { writeFileSync } from 'node:fs';

import { connect, LonghaulError } from '../../sdk/index.js';
import { parseTarget } from '../../sdk/target.js';
import { credentials, settings, withConfig } from '../options.js';
import { fail, type OutputFlags } from '../output.js';
import { program } from '../program.js';

/** `PATH:OFFSET:LENGTH`; the path may itself hold colons. */
function segmentArg(v: string): { path: string; offset: number; length: number } {
  const m = /^(.+):(\d+):(\d+)$/.exec(v);
  if (!m) throw new LonghaulError('E_USAGE', `segment ${JSON.stringify(v)} is not PATH:OFFSET:LENGTH`);
  return { path: m[1]!, offset: Number(m[2]), length: Number(m[3]) };
}

export function register(): void {
  withConfig(
    program
      .command('readv')
      .description('read many (path, offset, length) segments from a node in one request')
      .argument('<target>', 'HOST[:PORT] of the node')
      .argument('<segments...>', 'PATH:OFFSET:LENGTH, relative to the node root')
      .option('-o, --out <file>', 'write the segments, concatenated, to FILE (default: stdout)')
      .option('--json', 'one JSON object per segment, its bytes in base64')
      // For scripts that pass -q to every command: readv prints nothing but the data already.
      .option('-q, --quiet', 'print nothing but the segments (errors still go to stderr)'),
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
}

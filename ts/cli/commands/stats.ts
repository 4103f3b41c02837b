// `longhaul stats`: a node's statistics and active transfers.
import { nodeStats, type NodeStats } from '../../sdk/index.js';
import * as fmt from '../format.js';
import { credentials, settings, withConfig } from '../options.js';
import { fail, type OutputFlags } from '../output.js';
import { program } from '../program.js';

function statsLines(s: NodeStats): string[] {
  const lines = [
    `node ${s.listen}, root ${s.root}, auth ${s.auth ? 'token' : 'none'}`,
    `stored ${fmt.bytes(s.stored)}${s.capacity !== null ? ` of ${fmt.bytes(s.capacity)} (${fmt.bytes(s.free ?? 0)} free)` : ''}${s.reserved ? `, ${fmt.bytes(s.reserved)} reserved` : ''}${s.parts ? `; ${fmt.bytes(s.partsBytes)} of it in ${fmt.count(s.parts)} temporary files (running pushes, and failed ones kept for a resume)` : ''}`,
    `transfers: ${s.active} active, ${s.completed} done, ${s.failed} failed; ${fmt.bytes(s.bytesIn)} in, ${fmt.bytes(s.bytesOut)} out`,
    `pool: ${s.pool.buffers - s.pool.available} of ${s.pool.buffers} buffers of ${fmt.bytes(s.pool.bufferBytes)} in use${s.pool.locked ? ', locked' : ''}`,
    `memory: ${fmt.bytes(s.memory.held)} of ${fmt.bytes(s.memory.budget)} held (pools and indexes)`,
    `readv: ${fmt.count(s.readv.requests)} requests, ${fmt.count(s.readv.segments)} segments, ${fmt.bytes(s.readv.bytes)}`,
    `files named: ${fmt.count(s.filesLinked)} linked in (O_TMPFILE), ${fmt.count(s.filesRenamed)} renamed${s.lastFileCreation ? `; last push: ${s.lastFileCreation}` : ''}`,
    `congestion control: ${s.congestion}${s.congestionNote ? ` (${s.congestionNote})` : ''}`,
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

export function register(): void {
  withConfig(
    program
      .command('stats')
      .description("print a node's statistics and active transfers")
      .argument('<target>', 'HOST[:PORT] of the node')
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
}

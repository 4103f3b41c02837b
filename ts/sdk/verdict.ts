// What limited a send. The engine reads it from each data stream's TCP_INFO and its own thread
// states (core's session/send/verdict.rs); one cause only the node knows: a receiver that held
// the streams back may be slow, or may be rate-limited by its operator. When the engine says
// "receiver's window", the node's STATS tells which, and a limit the send ran close to makes the
// verdict "rate limit", with the limit and the rate as evidence.
import { nodeStats } from './client.js';
import type { ClientOptions } from './client.js';
import type { Target } from './target.js';

/** What limited a send: link, loss, receiver's window, sender's buffer, disk reads, CPU, rate limit, nothing to send (all there already) or unknown. */
export interface Verdict {
  limit: string;
  evidence: string;
}

/** A send that ran at this share of a node's limit or more was held by that limit. */
const AT_LIMIT = 0.7;

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB/s`;

/**
 * `ownRate`: the sender's own `rate` option. A send held by it has idle streams, which the
 * engine alone would read as slow disk reads.
 */
export async function refineVerdict(
  v: Verdict,
  bytesPerSecond: number,
  target: Target,
  options: ClientOptions,
  ownRate?: number,
): Promise<Verdict> {
  if (ownRate !== undefined && bytesPerSecond >= AT_LIMIT * ownRate && v.limit !== 'nothing to send') {
    return {
      limit: 'rate limit',
      evidence: `this send's own --rate is ${mb(ownRate)} and it ran at ${mb(bytesPerSecond)} (${((bytesPerSecond / ownRate) * 100).toFixed(0)}% of it); ${v.evidence}`,
    };
  }
  if (v.limit !== "receiver's window") return v;
  let stats;
  try {
    stats = await nodeStats(target, options);
  } catch {
    return v; // the verdict stands without the node's word
  }
  const near = stats.limits.filter((l) => bytesPerSecond >= AT_LIMIT * l.rate).sort((a, b) => a.rate - b.rate)[0];
  if (!near) return v;
  const who = near.scope === 'total' ? 'all transfers' : `peer ${near.peer}`;
  return {
    limit: 'rate limit',
    evidence: `the node limits ${who} to ${mb(near.rate)} and this send ran at ${mb(bytesPerSecond)} (${((bytesPerSecond / near.rate) * 100).toFixed(0)}% of it); ${v.evidence}`,
  };
}

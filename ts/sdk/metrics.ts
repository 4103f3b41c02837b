// Prometheus metrics for a node: a prom-client registry whose collectors pull the engine's
// statistics at scrape time (nothing is counted twice, nothing runs between scrapes), served
// over HTTP at /metrics.
import type { Server } from 'node:http';
import { createRequire } from 'node:module';

import type { Counter, Gauge, Registry } from 'prom-client';

import type { NodeStats, StorageNode } from './node.js';
import { LonghaulError } from './errors.js';
import { formatAddress } from './target.js';

/** A registry of the node's metrics, read from `node.stats()` at each scrape. */
export function nodeRegistry(node: StorageNode): Registry {
  // Loaded here, not at import: prom-client costs ~80 ms of start-up that `longhaul send` and
  // every SDK user without metrics would pay.
  const { collectDefaultMetrics, Counter, Gauge, Registry } = createRequire(import.meta.url)('prom-client') as typeof import('prom-client');
  const registry = new Registry();
  // No prefix: process_* and nodejs_* are the names Prometheus's client libraries all use, which
  // dashboards and alerts look for; the job and instance labels say whose process it is.
  collectDefaultMetrics({ register: registry });
  // One stats() per scrape, shared by every collector of that scrape.
  let cached: { at: number; stats: NodeStats } | undefined;
  const stats = (): NodeStats => {
    const now = Date.now();
    if (!cached || now - cached.at > 50) cached = { at: now, stats: node.stats() };
    return cached.stats;
  };
  // Each metric is reset and refilled from the stats at scrape time.
  const metric =
    <M extends Counter | Gauge>(
      Kind: new (cfg: { name: string; help: string; labelNames: string[]; registers: Registry[]; collect: (this: M) => void }) => M,
    ) =>
    (name: string, help: string, labelNames: string[], fill: (m: M, s: NodeStats) => void): void => {
      new Kind({
        name,
        help,
        labelNames,
        registers: [registry],
        collect(this: M) {
          this.reset();
          fill(this, stats());
        },
      });
    };
  const counter = metric<Counter>(Counter);
  const gauge = metric<Gauge>(Gauge);
  counter('longhaul_peer_received_bytes_total', 'Bytes received from each peer (pushes)', ['peer'], (c, s) => {
    for (const p of s.peers) c.inc({ peer: p.peer }, p.bytesIn);
  });
  counter('longhaul_peer_sent_bytes_total', 'Bytes sent to each peer (pulls, copies, readv)', ['peer'], (c, s) => {
    for (const p of s.peers) c.inc({ peer: p.peer }, p.bytesOut);
  });
  gauge('longhaul_active_transfers', 'Transfers running now, by direction', ['direction'], (g, s) => {
    for (const d of ['in', 'out', 'copy', 'bench']) g.set({ direction: d }, s.transfers.filter((t) => t.direction === d).length);
  });
  counter('longhaul_transfers_total', 'Finished transfers by outcome', ['outcome'], (c, s) => {
    c.inc({ outcome: 'ok' }, s.completed);
    c.inc({ outcome: 'failed' }, s.failed);
  });
  counter('longhaul_errors_total', 'Errors by code (transfers and refused requests)', ['code'], (c, s) => {
    for (const [code, n] of Object.entries(s.errors)) c.inc({ code }, n);
  });
  gauge('longhaul_bandwidth_limit_bytes_per_second', 'Configured bandwidth limits', ['scope', 'peer'], (g, s) => {
    for (const l of s.limits) g.set({ scope: l.scope, peer: l.peer ?? '' }, l.rate);
  });
  gauge('longhaul_bandwidth_utilisation_ratio', 'Share of each bandwidth limit used over the last second', ['scope', 'peer'], (g, s) => {
    for (const l of s.limits) g.set({ scope: l.scope, peer: l.peer ?? '' }, l.utilisation);
  });
  gauge('longhaul_stored_bytes', 'Bytes stored under the root, by the node account', [], (g, s) => g.set(s.stored));
  gauge('longhaul_reserved_bytes', 'Bytes reserved by transfers in flight', [], (g, s) => g.set(s.reserved));
  gauge('longhaul_parts', 'Temporary files among the stored bytes (running pushes, failed ones kept for a resume)', [], (g, s) =>
    g.set(s.parts),
  );
  gauge('longhaul_parts_bytes', 'Bytes of those temporary files', [], (g, s) => g.set(s.partsBytes));
  gauge('longhaul_capacity_bytes', 'Configured capacity (absent without one)', [], (g, s) => {
    if (s.capacity !== null) g.set(s.capacity);
  });
  gauge('longhaul_pool_buffers', 'Buffers in the node pool', [], (g, s) => g.set(s.pool.buffers));
  gauge('longhaul_pool_buffers_in_use', 'Pool buffers held by transfers now', [], (g, s) => g.set(s.pool.buffers - s.pool.available));
  gauge('longhaul_pool_buffer_bytes', 'Size of each pool buffer', [], (g, s) => g.set(s.pool.bufferBytes));
  gauge('longhaul_memory_budget_bytes', 'The memory budget for pools and indexes (--memory)', [], (g, s) => g.set(s.memory.budget));
  gauge(
    'longhaul_memory_held_bytes',
    'Bytes of the memory budget held now: the push pool and the pools and indexes of running transfers',
    [],
    (g, s) => g.set(s.memory.held),
  );
  counter('longhaul_files_named_total', 'Files given their final name, by how: linked in from O_TMPFILE, or renamed', ['how'], (c, s) => {
    c.inc({ how: 'linked' }, s.filesLinked);
    c.inc({ how: 'renamed' }, s.filesRenamed);
  });
  counter('longhaul_readv_requests_total', 'READV requests answered', [], (c, s) => c.inc(s.readv.requests));
  counter('longhaul_readv_segments_total', 'READV segments answered', [], (c, s) => c.inc(s.readv.segments));
  counter('longhaul_readv_bytes_total', 'READV bytes sent', [], (c, s) => c.inc(s.readv.bytes));
  gauge('longhaul_connections', 'Connections open now: in their handshake (no thread each), or past it', ['state'], (g, s) => {
    g.set({ state: 'handshake' }, s.connections.handshaking);
    g.set({ state: 'established' }, s.connections.open - s.connections.handshaking);
  });
  gauge('longhaul_connections_max', 'Connection caps in force: in all (after the descriptor limit), per peer', ['scope'], (g, s) => {
    g.set({ scope: 'total' }, s.connections.max);
    g.set({ scope: 'peer' }, s.connections.maxPerPeer);
  });
  counter('longhaul_connections_refused_total', 'Connections refused at a cap (E_BUSY)', [], (c, s) => c.inc(s.connections.refused));
  counter('longhaul_connections_evicted_total', 'Connections in their handshake closed to make room at the global cap', [], (c, s) =>
    c.inc(s.connections.evicted),
  );
  return registry;
}

export interface MetricsServer {
  /** `http://HOST:PORT/metrics` */
  readonly url: string;
  close(): Promise<void>;
}

/** The engine's words for a failed bind (crates/longhaul-core, error.rs), for the metrics port. */
function listenError(addr: string, err: NodeJS.ErrnoException): LonghaulError {
  const why =
    err.code === 'EADDRINUSE'
      ? 'address in use'
      : err.code === 'EACCES'
        ? 'permission denied: a port below 1024 needs root or CAP_NET_BIND_SERVICE'
        : err.code === 'EADDRNOTAVAIL'
          ? 'no such address on this host'
          : err.message;
  return new LonghaulError('E_LISTEN', `cannot listen on ${addr} for metrics: ${why} (${err.code ?? err.message})`, { cause: err });
}

/** Serves the node's metrics at http://HOST:PORT/metrics. */
export async function serveMetrics(node: StorageNode, host: string, port: number): Promise<MetricsServer> {
  // Loaded here: every CLI command loads the SDK, and node:http costs each of them ~3 ms of start-up.
  const { createServer } = await import('node:http');
  const registry = nodeRegistry(node);
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(formatAddress(host, port), err)));
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  return {
    url: `http://${formatAddress(host, actual)}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

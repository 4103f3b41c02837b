// `longhaul serve`: a storage node, its events logged as JSON lines (pino) on stderr.
import type pinoType from 'pino';

import { parseListen } from '../../sdk/target.js';
import { LonghaulError, serve, serveMetrics, type TransferInfo } from '../../sdk/index.js';
import * as fmt from '../format.js';
import { settings, withConfig } from '../options.js';
import { fail } from '../output.js';
import { program } from '../program.js';

export function register(): void {
  withConfig(
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
        congestion: c.congestion,
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

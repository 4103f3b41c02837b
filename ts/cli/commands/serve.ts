// `longhaul serve`: a storage node, its events logged as JSON lines (pino) on stderr.

import type pinoType from 'pino';

import { parseListen } from '../../sdk/target.js';
import { LonghaulError, resolveToken, serve, serveMetrics, type ConnectionRefused, type TransferInfo } from '../../sdk/index.js';
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
      // Checked here so that the message names the CLI's flags, not the SDK's options.
      if (o.auth && resolveToken({ tokenFile: c.tokenFile }) === undefined)
        throw new LonghaulError(
          'E_USAGE',
          'a node needs a token: give --token-file FILE, LONGHAUL_TOKEN or LONGHAUL_TOKEN_FILE, or --no-auth to serve without authentication on loopback',
        );
      const { default: pino } = (await import('pino')) as { default: typeof pinoType }; // only `serve` logs
      ({ getSystemErrorName } = await import('node:util')); // for explain(), loaded by `serve` alone
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
        bench: c.bench,
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
      let metrics;
      try {
        metrics = c.metrics ? await serveMetrics(node, parseListen(c.metrics).host, parseListen(c.metrics).port) : undefined;
      } catch (err) {
        await node.close();
        throw err;
      }
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
        const path = t.path || '/';
        const head =
          t.direction === 'bench'
            ? `bench from ${t.peer}`
            : `${t.direction} ${path} ${t.direction === 'in' ? 'from' : t.direction === 'out' ? 'to' : 'for'} ${t.peer}`;
        const fields = {
          event: type,
          id: t.id,
          peer: t.peer,
          direction: t.direction,
          path,
          bytesDone: t.bytesDone,
          bytesTotal: t.bytesTotal,
          streams: t.streams,
          rate: Math.round(t.rate),
        };
        if (type === 'transfer:start') log.info(fields, `${head} started`);
        else if (type === 'transfer:progress') log.debug(fields, `${t.direction} ${path} ${fmt.bytes(t.bytesDone)}`);
        else {
          // One line an operator can read alone: who, which way, what, how much, how fast, how it ended.
          const figures = `${fmt.bytes(t.bytesDone)} in ${fmt.duration(t.seconds)} (${fmt.rate(t.rate)})`;
          const end = { ...fields, seconds: t.seconds, outcome: t.outcome, ...(t.deleted > 0 ? { deleted: t.deleted } : {}) };
          const deleted = t.deleted > 0 ? `; deleted ${t.deleted}` : '';
          if (t.outcome === 'ok') log.info(end, `${head} ok: ${figures}${deleted}`);
          else {
            const why = explain(t.message);
            log.warn(
              { ...end, code: t.code, error: why.text, ...why.fields },
              `${head} failed: ${t.code}${why.text ? `: ${why.text}` : ''}; ${figures}`,
            );
          }
        }
      };
      node.on('transfer:start', event('transfer:start'));
      node.on('transfer:progress', event('transfer:progress'));
      node.on('transfer:end', event('transfer:end'));
      node.on('connection:refused', (r: ConnectionRefused) => {
        if (json) process.stdout.write(`${JSON.stringify({ type: 'connection:refused', ...r })}\n`);
        // E_AUTH and E_TLS are failed logins; a handshake that timed out or broke the protocol is a refusal all the same.
        const login = r.code === 'E_AUTH' || r.code === 'E_TLS';
        log.warn(
          { event: login ? 'login:failed' : 'connection:refused', peer: r.peer, code: r.code, reason: r.message },
          `${login ? 'login' : 'connection'} from ${r.peer} refused: ${r.code}: ${r.message}`,
        );
      });
      let stopping = false;
      let stopped = false;
      const stop = (signal: string): void => {
        // The first signal drains (running transfers finish, new ones are refused); a second one stops now.
        const drain = !stopping;
        stopping = true;
        log.info(
          { event: drain ? 'draining' : 'stopping', signal },
          drain ? 'draining: waiting for running transfers (signal again to stop now)' : 'stopping: failing the running transfers',
        );
        void Promise.all([node.close({ drain }), metrics?.close()]).then(() => {
          if (stopped) return;
          stopped = true;
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

let getSystemErrorName: ((errno: number) => string) | undefined;

/** The OS error's name (13 → EACCES), or undefined for a number the OS does not know. */
function errnoName(n: number): string | undefined {
  const name = n > 0 && getSystemErrorName ? getSystemErrorName(-n) : '';
  return /^E[A-Z0-9]+$/.test(name) ? name : undefined;
}

/**
 * A failed transfer's message for the log: the OS error as its name and text (`EACCES:
 * permission denied`, as Node prints them) in place of Rust's `(os error 13)`, and, for an
 * E_IO, the path and errno as fields of their own.
 */
function explain(message: string | null): { text: string; fields: Record<string, string> } {
  if (!message) return { text: '', fields: {} };
  // A peer's ERROR reaches here too: the engine bounds it, and the regexes below see no more.
  if (message.length > 1024) message = `${message.slice(0, 1024)}…`;
  const fields: Record<string, string> = {};
  const text = message.replace(/([A-Za-z][^:()]*?) \(os error (\d+)\)/, (whole, what: string, n: string) => {
    const name = errnoName(Number(n));
    if (!name) return whole;
    fields.errno = name;
    return `${name}: ${what.charAt(0).toLowerCase()}${what.slice(1)}`;
  });
  // The engine's E_IO reads `OPERATION "PATH": OS ERROR`.
  const io = /^([a-z][a-z ]*) "((?:[^"\\]|\\.)*)": /.exec(message);
  if (io) {
    fields.operation = io[1];
    try {
      fields.file = JSON.parse(`"${io[2]}"`) as string;
    } catch {
      fields.file = io[2];
    }
  }
  return { text, fields };
}

import { LonghaulError } from './errors.js';

export interface Target {
  host: string;
  port: number;
  /** Destination directory under the node's root; '' for the root itself. */
  dest: string;
}

/** The port `serve` listens on unless told otherwise, and the one a target without a port names. */
export const DEFAULT_PORT = 7878;

/**
 * Parses `HOST[:PORT][/DEST]` (IPv6 as `[::1]:PORT[/DEST]`; the port defaults to 7878, where
 * `serve` listens by default). DEST is relative to the node's root; a leading slash is accepted
 * and ignored, as a node has no other root to be relative to.
 */
export function parseTarget(text: string): Target {
  // `HOST/DEST` or a bare `HOST`: the default port. (A bare IPv6 address needs its brackets.)
  const portless = /^(\[[^\]]+\]|[^/:[\]]+)(\/.*)?$/.exec(text);
  const withPort = portless ? `${portless[1]}:${DEFAULT_PORT}${portless[2] ?? ''}` : text;
  const { host, port, rest } = splitAddress(withPort, 'HOST[:PORT][/DEST]', 1);
  const dest = (rest ?? '').replace(/^\/+/, '').replace(/\/+$/, '');
  return { host, port, dest };
}

export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parses a listening address `HOST:PORT`, where port 0 asks for a free port. */
export function parseListen(text: string): { host: string; port: number } {
  const { host, port, rest } = splitAddress(text, 'HOST:PORT', 0);
  if (rest !== undefined) throw new LonghaulError('E_USAGE', `listen address ${JSON.stringify(text)} is not HOST:PORT`);
  return { host, port };
}

function splitAddress(text: string, form: string, minPort: number): { host: string; port: number; rest?: string } {
  const m = /^(\[[^\]]+\]|[^/:[\]]+):(\d{1,5})(?:\/(.*))?$/.exec(text);
  if (!m) throw new LonghaulError('E_USAGE', `${JSON.stringify(text)} is not ${form}`);
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  const port = Number(m[2]);
  if (port < minPort || port > 65535) throw new LonghaulError('E_USAGE', `port ${port} is out of range ${minPort}..65535`);
  return { host, port, rest: m[3] };
}

import { LonghaulError } from './errors.js';

export interface Target {
  host: string;
  port: number;
  /** Destination directory under the node's root; '' for the root itself. */
  dest: string;
}

/**
 * Parses `HOST:PORT[/DEST]` (IPv6 as `[::1]:PORT[/DEST]`). DEST is relative to the node's root;
 * a leading slash is accepted and ignored, as a node has no other root to be relative to.
 */
export function parseTarget(text: string): Target {
  const m = /^(\[[^\]]+\]|[^/:[\]]+):(\d{1,5})(?:\/(.*))?$/.exec(text);
  if (!m) {
    throw new LonghaulError('E_USAGE', `target ${JSON.stringify(text)} is not HOST:PORT[/DEST]`);
  }
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) {
    throw new LonghaulError('E_USAGE', `port ${port} is out of range 1..65535`);
  }
  const dest = (m[3] ?? '').replace(/^\/+/, '').replace(/\/+$/, '');
  return { host, port, dest };
}

export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

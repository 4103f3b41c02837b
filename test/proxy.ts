// A TCP relay on loopback for fault tests: it forwards every connection to an upstream address
// (which may change, as when a node restarts on another port), counts the bytes going up, and
// can damage that traffic once: flip one bit, stall (stop forwarding, keep the sockets open) or
// drop every connection, when the upstream byte count reaches a mark; and can hold one
// connection to a slow pace throughout (`slow`: a data stream far slower than the others).
import { createServer, connect, type Server, type Socket } from 'node:net';

export type Fault = { kind: 'flip' | 'stall' | 'drop'; atByte: number };

export interface Relay {
  /** The address to give the client. */
  address: string;
  /** Where connections go; change it and new connections follow. */
  upstream: string;
  /** Bytes forwarded client → upstream, over all connections. */
  bytesUp: number;
  /** Connections accepted. */
  connections: number;
  /** Set to damage the traffic once; cleared when it has happened. */
  fault: Fault | undefined;
  /** Faults that happened, in order. */
  happened: Fault[];
  /** The `connection`-th connection accepted (from 1) is read at `bytesPerSecond` at most. */
  slow: { connection: number; bytesPerSecond: number } | undefined;
  close(): Promise<void>;
}

export async function relay(upstream: string): Promise<Relay> {
  const sockets = new Set<Socket>();
  let stalled = false;
  const r: Relay = {
    address: '',
    upstream,
    bytesUp: 0,
    connections: 0,
    fault: undefined,
    happened: [],
    slow: undefined,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };
  const server: Server = createServer((client) => {
    r.connections++;
    const pace = r.slow?.connection === r.connections ? r.slow.bytesPerSecond : 0;
    track(client);
    const [host, port] = splitHostPort(r.upstream);
    const up = connect(port, host);
    track(up);
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
    up.on('data', (d: Buffer) => {
      if (!client.write(d)) up.pause();
    });
    client.on('drain', () => up.resume());
    client.on('data', (d: Buffer) => {
      if (stalled) return;
      const f = r.fault;
      if (f && r.bytesUp + d.length > f.atByte) {
        r.fault = undefined;
        r.happened.push(f);
        if (f.kind === 'flip') {
          d = Buffer.from(d);
          const i = f.atByte - r.bytesUp;
          d[i] = d[i]! ^ 0x10;
        } else if (f.kind === 'stall') {
          stalled = true;
          for (const s of sockets) s.pause();
          return;
        } else {
          for (const s of sockets) s.destroy();
          return;
        }
      }
      r.bytesUp += d.length;
      if (pace > 0) {
        // Read no more than the pace allows: the sender's TCP sees its window fill.
        client.pause();
        up.write(d);
        setTimeout(() => client.resume(), (d.length / pace) * 1000);
        return;
      }
      if (!up.write(d)) client.pause();
    });
    up.on('drain', () => client.resume());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address();
  if (a === null || typeof a === 'string') throw new Error('relay did not bind');
  r.address = `127.0.0.1:${a.port}`;
  return r;
}

function splitHostPort(hp: string): [string, number] {
  const i = hp.lastIndexOf(':');
  return [hp.slice(0, i).replace(/^\[|\]$/g, ''), Number(hp.slice(i + 1))];
}

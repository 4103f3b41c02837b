// Little-endian fields and frames of the wire protocol (docs/PROTOCOL.md), for tests that must
// speak it by hand: a hostile client, or a hostile node.

export const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};

export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

export const u64 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};

/** A frame: `u32 length` (type byte included), the type, the body. */
export function frame(type: number, body: Buffer): Buffer {
  return Buffer.concat([u32(body.length + 1), Buffer.from([type]), body]);
}

/** HELLO for version 1 with `features`, a zero nonce. */
export const hello = (features = 1): Buffer =>
  frame(0x01, Buffer.concat([Buffer.from('LONGHAUL'), u16(1), u16(1), u64(features), Buffer.alloc(16)]));

/** MANIFEST into `dest`: 1 stream of 4 MiB blocks, then `index`. */
export function manifest(dest: string, index: Buffer): Buffer {
  const d = Buffer.from(dest);
  return frame(0x03, Buffer.concat([u16(d.length), d, u16(1), u32(4 << 20), index]));
}

/** Splits complete frames off the front of `buf`; returns them and what is left. */
export function takeFrames(buf: Buffer): { frames: { type: number; body: Buffer }[]; rest: Buffer } {
  const frames: { type: number; body: Buffer }[] = [];
  while (buf.length >= 5 && buf.length >= 4 + buf.readUInt32LE(0)) {
    const len = buf.readUInt32LE(0);
    frames.push({ type: buf[4]!, body: Buffer.from(buf.subarray(5, 4 + len)) });
    buf = buf.subarray(4 + len);
  }
  return { frames, rest: buf };
}

/** The code of an ERROR frame's body. */
export const errorCode = (body: Buffer): string => body.subarray(1, 1 + body[0]!).toString();

/**
 * A node of an older version on a loopback port: it answers HELLO with HELLO_OK offering only
 * `features` (and everyday limits), then reads on without answering. `frames` lists the types
 * of the frames it received, so a test can assert that nothing past HELLO went out; `bodies`
 * their bodies.
 */
export async function olderNode(features: number): Promise<{ port: number; frames: number[]; bodies: Buffer[]; close: () => void }> {
  const { createServer } = await import('node:net');
  const frames: number[] = [];
  const bodies: Buffer[] = [];
  const server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      const got = takeFrames(Buffer.concat([buf, d]));
      buf = got.rest;
      for (const f of got.frames) {
        frames.push(f.type);
        bodies.push(f.body);
        // HELLO_OK: version 1, the features, max streams, block, manifest, connections and
        // control frame, no token, a zero nonce.
        const limits = [u16(16), u32(4 << 20), u32(1 << 28), u32(1024), u32(2 << 20)];
        if (f.type === 0x01) sock.write(frame(0x02, Buffer.concat([u16(1), u64(features), ...limits, Buffer.from([0]), Buffer.alloc(16)])));
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, frames, bodies, close: () => server.close() };
}

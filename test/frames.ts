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

// A node under idle sockets and stalled READV readers (issue 29): starts `longhaul serve` from
// a build's dist/ (this checkout's by default), opens 2,000 silent sockets from 127.0.0.10-19
// and 20 that send HELLO and a 2 GiB READV and never read, then times an `ls` and samples the
// node's Threads, descriptors and RSS at start, loaded, and 12 s later (idle timeout 3 s).
//   node bench/conns.mjs [DIST] [--idle N]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const args = process.argv.slice(2);
const at = args.indexOf('--idle');
const IDLE = at >= 0 ? Number(args.splice(at, 2)[1]) : 2000;
const dist = resolve(args[0] ?? join(import.meta.dirname, '..', 'dist'));
// The SDK is dist/sdk/index.js since issue 30; older builds have it at dist/index.js.
const { ls } = await import(existsSync(join(dist, 'sdk', 'index.js')) ? join(dist, 'sdk', 'index.js') : join(dist, 'index.js'));
const root = mkdtempSync(join(tmpdir(), 'lh-conns-'));
const big = Buffer.alloc(64 << 20, 7);
writeFileSync(join(root, 'big'), big);
const child = spawn(
  process.execPath,
  [join(dist, 'cli.js'), 'serve', '--root', root, '--listen', '127.0.0.1:0', '--no-auth', '--json', '--log-level', 'warn', '--idle-timeout', '3'],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const { port } = JSON.parse(await new Promise((r) => createInterface({ input: child.stdout }).once('line', r)));
const usage = () => {
  const s = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  return { threads: +s.match(/Threads:\s+(\d+)/)[1], fds: readdirSync(`/proc/${child.pid}/fd`).length, rssMiB: +(s.match(/VmRSS:\s+(\d+)/)[1] / 1024).toFixed(1) };
};
console.log('start', usage());
const u16 = (n) => Buffer.from([n & 0xff, n >> 8]);
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u64 = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };
const frame = (t, body) => Buffer.concat([u32(body.length + 1), Buffer.from([t]), body]);
const HELLO = frame(1, Buffer.concat([Buffer.from('LONGHAUL'), u16(1), u16(1), u64(1), Buffer.alloc(16)]));
const segs = Array.from({ length: 1024 }, (_, i) => Buffer.concat([u16(0), u64((i * (2 << 20)) % (64 << 20)), u32(2 << 20)]));
const READV = frame(0x13, Buffer.concat([u16(1), u16(3), Buffer.from('big'), u32(1024), ...segs]));
const socks = [];
for (let i = 0; i < IDLE; i++) {
  const s = connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${10 + (i % 10)}` });
  s.on('error', () => {});
  socks.push(s);
}
for (let i = 0; i < 20; i++) {
  const s = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.3' });
  s.on('error', () => {});
  s.once('data', () => {
    s.pause();
    s.write(READV);
  });
  s.write(HELLO);
  socks.push(s);
}
await new Promise((r) => setTimeout(r, 3000));
console.log('loaded', usage());
const t = Date.now();
try {
  await Promise.race([ls(`127.0.0.1:${port}/`), new Promise((_, rej) => setTimeout(() => rej(new Error('no answer in 15 s')), 15000))]);
  console.log('ls answered in', Date.now() - t, 'ms');
} catch (e) {
  console.log('ls failed:', e.code ?? '', e.message.slice(0, 120));
}
await new Promise((r) => setTimeout(r, 8000));
console.log('12 s after the READVs', usage());
for (const s of socks) s.destroy();
child.kill('SIGKILL');
rmSync(root, { recursive: true, force: true });
process.exit(0);

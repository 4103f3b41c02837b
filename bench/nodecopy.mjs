// The baseline a Node.js developer would write: net + fs streams, one connection, files one
// after another. Each file is a header (u32 length + JSON {path, size}) then its bytes; the
// receiver answers one byte once everything is written, so the sender's exit means "arrived".
//   node bench/nodecopy.mjs serve PORT ROOT        (prints "listening" when ready)
//   node bench/nodecopy.mjs send SRC PORT DEST     (SRC a file or a directory; DEST under ROOT)
import { createReadStream, mkdirSync, openSync, closeSync, writeSync, readdirSync, statSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { dirname, join, relative } from 'node:path';
import { once } from 'node:events';

const [mode, ...args] = process.argv.slice(2);

if (mode === 'serve') {
  const [port, root] = args;
  const server = createServer((sock) => {
    let pending = Buffer.alloc(0);
    let file = null; // { fd, left }
    let base = null;
    sock.on('data', (chunk) => {
      let buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let at = 0;
      while (at < buf.length) {
        if (file) {
          const n = Math.min(file.left, buf.length - at);
          writeSync(file.fd, buf, at, n);
          at += n;
          file.left -= n;
          if (file.left === 0) {
            closeSync(file.fd);
            file = null;
          }
          continue;
        }
        if (buf.length - at < 4) break;
        const len = buf.readUInt32LE(at);
        if (buf.length - at < 4 + len) break;
        const head = JSON.parse(buf.toString('utf8', at + 4, at + 4 + len));
        at += 4 + len;
        if (base === null) {
          base = join(root, head.dest);
          continue;
        }
        const path = join(base, head.path);
        mkdirSync(dirname(path), { recursive: true });
        const fd = openSync(path, 'w');
        if (head.size === 0) closeSync(fd);
        else file = { fd, left: head.size };
      }
      pending = buf.subarray(at);
    });
    sock.on('end', () => sock.end('k'));
  });
  server.listen(Number(port), '127.0.0.1', () => console.log('listening'));
} else if (mode === 'send') {
  const [src, port, dest] = args;
  const files = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  const single = statSync(src).isFile();
  if (single) files.push(src);
  else walk(src);
  const sock = connect(Number(port), '127.0.0.1');
  await once(sock, 'connect');
  const header = (obj) => {
    const json = Buffer.from(JSON.stringify(obj));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(json.length);
    return Buffer.concat([len, json]);
  };
  const write = (b) => (sock.write(b) ? Promise.resolve() : once(sock, 'drain'));
  await write(header({ dest }));
  for (const path of files) {
    const size = statSync(path).size;
    await write(header({ path: single ? relative(dirname(src), path) : relative(src, path), size }));
    if (size === 0) continue;
    for await (const chunk of createReadStream(path)) await write(chunk);
  }
  sock.end();
  sock.resume();
  await once(sock, 'end');
} else {
  console.error('usage: nodecopy.mjs serve PORT ROOT | send SRC PORT DEST');
  process.exit(2);
}

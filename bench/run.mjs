// `npm run bench [-- --quick]`: longhaul against its peers (compare.mjs).
// `npm run bench -- NAME [options]`: one of the other benches in this folder.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const benches = {
  compare: 'longhaul against GridFTP, XRootD, rsync, tar | nc and a Node.js copy (compare.mjs; the default)',
  sched: 'schedulers: pipelined vs adaptive vs unpinned vs auto (sched.mjs)',
  streams: 'the default stream count (streams.mjs)',
  rss: 'peak RSS of node and sender for a 4 GiB file, and per file of a tree with --files N (rss.mjs)',
  load: 'many concurrent senders against one node: completion, verification, node RSS (load.mjs)',
  integrity: 'cost of verify full, fsync file/end and TLS against the defaults (integrity.mjs)',
  readv: 'N scattered segments in one readv vs N single reads vs local pread (readv.mjs)',
  blocksize: 'the default block size: sizes interleaved on the workloads of compare (blocksize.mjs)',
  wan: 'over an emulated WAN (lh-netem): longhaul against iperf3 (the limit), rsync and tar | nc, under BBR and CUBIC (wan.mjs; --check validates the emulator)',
  hostmem: 'memory the VM hands back to its host: first-touch cost and the spread it puts into runs (hostmem.mjs)',
  net: 'network-only: longhaul bench (generated data, discarded) vs iperf3 -P 1 and GridFTP /dev/zero to /dev/null over loopback, CPU s/GiB of both ends (net.mjs)',
  mirror: 'a nightly mirror\'s second run after 1% of a 100,000-file tree changed: longhaul send (and --checksum) against rsync daemon -a --delete and rsync -c (mirror.mjs; --files N, --mib M)',
  startup: 'start-up time: node -e 0, --version, send of 1 byte, globus-url-copy of 1 byte, interleaved (startup.mjs)',
  scale: 'many small files pushed to a node (issue 33): peak RSS of both ends against pool + 64 MiB, firstByteSeconds, files/s, for 20,000 and --files N (default 2,000,000) (scale.mjs)',
};
const args = process.argv.slice(2);
const usage = `usage: npm run bench [-- --quick] | npm run bench -- NAME [options] | npm run bench -- NAME --help\n${Object.entries(benches).map(([k, v]) => `  ${k.padEnd(9)} ${v}`).join('\n')}`;
if (args[0] === '--help' || args[0] === '-h') {
  console.log(usage);
  process.exit(0);
}
const [name, ...rest] = !args[0] || args[0].startsWith('--') ? ['compare', ...args] : args;
if (!(name in benches)) {
  console.error(usage);
  process.exit(2);
}
const r = spawnSync(process.execPath, [join(import.meta.dirname, `${name}.mjs`), ...rest], { stdio: 'inherit' });
process.exit(r.status ?? 1);

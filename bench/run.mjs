// `npm run bench -- NAME [options]`: runs one of the benches in this folder.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const benches = {
  sched: 'schedulers: pipelined vs adaptive vs unpinned vs auto (sched.mjs)',
  streams: 'the default stream count (streams.mjs)',
  rss: 'receiver peak RSS for a 4 GiB file (rss.mjs)',
  readv: 'N scattered segments in one readv vs N single reads vs local pread (readv.mjs)',
};
const [name, ...rest] = process.argv.slice(2);
if (!name || !(name in benches)) {
  console.error(`usage: npm run bench -- NAME [options]\n${Object.entries(benches).map(([k, v]) => `  ${k.padEnd(8)} ${v}`).join('\n')}`);
  process.exit(name ? 2 : 0);
}
const r = spawnSync(process.execPath, [join(import.meta.dirname, `${name}.mjs`), ...rest], { stdio: 'inherit' });
process.exit(r.status ?? 1);

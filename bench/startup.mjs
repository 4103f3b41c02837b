// Start-up time: what a script that moves many small datasets pays per command (issue 35).
//
// Times wall time around each process (spawnSync, output discarded) and, in a second run, its
// CPU time (all its threads, from `perf stat -e task-clock`, else /usr/bin/time to 10 ms:
// steadier than wall time when the machine is shared), interleaved
// over N rounds (round 1 of every command, then round 2, ...), and prints medians (min-max):
//   `node -e 0`                          Node's own start, the floor for a Node CLI
//   `longhaul --version`                 the CLI's start alone
//   `longhaul send ONE 127.0.0.1:P/rN -q` a 1-byte file to a node started once (--no-auth on
//                                        127.0.0.1, its root in a temp dir), a fresh DEST each run
//   `node dist/cli.js send …`            the same through the README's in-repository entry (an ES
//                                        module that loads the bin: Node's ES loader on top)
// `longhaul` is the package's bin (package.json), run as an installed one is through its
// `#!/usr/bin/env node` line: `/usr/bin/env node BIN`, this Node first on PATH.
//   `globus-url-copy file:///ONE file:///DEST` the peer tool's 1-byte copy (file:// to file://)
// With `--before DIR` (another checkout, built), its `--version` and `send` run interleaved too,
// for a before/after in one run. Targets: send and --version <= 0.08 s.
//
//   node bench/startup.mjs [--runs 21] [--before DIR] [--no-write]
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

import { benchOptions } from './data.mjs';

const args = benchOptions(import.meta.filename, {
  runs: { type: 'string', default: '21' },
  before: { type: 'string' },
  'no-write': { type: 'boolean' },
});
const RUNS = Number(args.runs);
const REPO = join(import.meta.dirname, '..');
const binOf = (dir) => join(dir, JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).bin.longhaul);
const CLI = binOf(REPO);
const BEFORE = args.before ? binOf(args.before) : null;
const bin = (file, argv) => ['/usr/bin/env', ['node', file, ...argv]];
process.env.PATH = `${dirname(process.execPath)}:${process.env.PATH}`;
const sh = (cmd) => spawnSync('bash', ['-c', cmd], { encoding: 'utf8' });

const work = mkdtempSync(join(tmpdir(), 'longhaul-startup-'));
const one = join(work, 'one');
writeFileSync(one, 'x');
mkdirSync(join(work, 'gridftp'));

const node = spawn(process.execPath, [CLI, 'serve', '--root', join(work, 'root'), '--listen', '127.0.0.1:0', '--no-auth', '--json'], {
  stdio: ['ignore', 'pipe', 'ignore'],
});
const first = await new Promise((resolve) => createInterface({ input: node.stdout }).once('line', resolve));
const { port } = JSON.parse(first);

const haveGridftp = sh('command -v globus-url-copy').status === 0;
const cases = [
  ['`node -e 0`', () => [process.execPath, ['-e', '0']]],
  ['`longhaul --version`', () => bin(CLI, ['--version'])],
  ['`longhaul send` 1 byte', (i) => bin(CLI, ['send', one, `127.0.0.1:${port}/r${i}`, '-q'])],
  [
    '`node dist/cli.js send` 1 byte',
    (i) => [process.execPath, [join(REPO, 'dist', 'cli.js'), 'send', one, `127.0.0.1:${port}/m${i}`, '-q']],
  ],
  ...(BEFORE
    ? [
        ['before: `longhaul --version`', () => bin(BEFORE, ['--version'])],
        ['before: `longhaul send` 1 byte', (i) => bin(BEFORE, ['send', one, `127.0.0.1:${port}/b${i}`, '-q'])],
      ]
    : []),
  ...(haveGridftp
    ? [['`globus-url-copy` 1 byte', (i) => ['globus-url-copy', [`file://${one}`, `file://${join(work, 'gridftp', `g${i}`)}`]]]]
    : []),
];

// perf's task-clock in ms when perf runs here (it needs perf_event_paranoid <= 2), else /usr/bin/time's user + sys.
const PERF = spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', 'true'], { encoding: 'utf8' }).stderr?.includes('task-clock');
const timed = (file, argv) =>
  PERF ? ['perf', ['stat', '-x,', '-e', 'task-clock', file, ...argv]] : ['/usr/bin/time', ['-f', 'CPU %U %S', file, ...argv]];
function cpuOf(stderr) {
  if (PERF) return Number(/^([\d.]+),msec,task-clock/m.exec(stderr)[1]) / 1000;
  const m = /CPU ([\d.]+) ([\d.]+)\s*$/.exec(stderr);
  return Number(m[1]) + Number(m[2]);
}

const times = cases.map(() => []);
const cpus = cases.map(() => []);
try {
  for (let i = 0; i < RUNS; i++) {
    cases.forEach(([name, cmd], c) => {
      // Wall time of the command alone; then its CPU time in a second run under perf or time,
      // whose own start would otherwise count as the command's.
      const [file, argv] = cmd(2 * i);
      const t0 = process.hrtime.bigint();
      const r = spawnSync(file, argv, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r.status !== 0) throw new Error(`${name} failed (status ${r.status}): ${r.stderr}`);
      times[c].push(s);
      const again = cmd(2 * i + 1);
      const t = spawnSync(...timed(...again), { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
      if (t.status !== 0) throw new Error(`${name} failed (status ${t.status}): ${t.stderr}`);
      cpus[c].push(cpuOf(t.stderr));
    });
  }
} finally {
  node.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = cases.map(([name], c) => {
  const t = times[c];
  return { name, median: median(t), min: Math.min(...t), max: Math.max(...t), cpu: median(cpus[c]) };
});
const floor = rows[0].median;
const host = sh("uname -r; nproc; grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").stdout.trim().split('\n');
const command = `node bench/startup.mjs ${process.argv.slice(2).join(' ')}`.trim();
const header = `${new Date().toISOString().slice(0, 10)}, \`${command}\`; ${host[1]} vCPUs (${host[2]?.trim()}), Linux ${host[0]}, Node ${process.version}; ${RUNS} interleaved rounds.`;
const table = [
  `| command | wall s, median (min-max) | over \`node -e 0\` | CPU s, median (${PERF ? 'perf task-clock' : 'user + sys'}) |`,
  '| --- | --- | ---: | ---: |',
  ...rows.map(
    (r) =>
      `| ${r.name} | ${r.median.toFixed(3)} (${r.min.toFixed(3)}-${r.max.toFixed(3)}) | ${(r.median - floor).toFixed(3)} | ${r.cpu.toFixed(PERF ? 3 : 2)} |`,
  ),
].join('\n');
console.log(`${header}\n\n${table}\n\ntarget: \`longhaul send\` 1 byte and \`longhaul --version\` <= 0.080 s`);
if (!args['no-write']) {
  mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
  const file = join(import.meta.dirname, 'results', `${new Date().toISOString().slice(0, 10)}-startup.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ header, runs: RUNS, rows, times: Object.fromEntries(cases.map(([n], c) => [n, { wall: times[c], cpu: cpus[c] }])) }, null, 1)}\n`,
  );
  console.error(`wrote ${file}`);
}

// `npm run bench -- net [--rounds N] [--size 4G] [--quick]`: network-only mode over loopback
// (issue 31, item 7). `longhaul bench` (defaults, and --streams 1) against `iperf3 -P 1` moving
// the same bytes and, when installed, GridFTP's memory-to-memory run (`globus-url-copy -len N
// file:///dev/zero ftp://127.0.0.1:PORT/dev/null`). Tools take turns within each round
// (the order rotates), so a slow spell of the shared VM lands on all of them.
//
// Per run: the process's wall time, the rate, its ratio to iperf3's median, and the CPU seconds
// per GiB of each end: the client from /usr/bin/time (user + system, its whole process: Node's
// start-up for longhaul too), the server from /proc/PID/stat (utime + stime + the children it
// reaped, GridFTP forks a process per session) before and after. The rate is over the tool's own
// transfer time where it reports one (longhaul's summary, iperf3's receiver) and over the process
// wall time otherwise (GridFTP).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

const args = process.argv.slice(2);
if (args.includes('--help')) {
  console.log('usage: npm run bench -- net [--rounds N (default 5)] [--size BYTES (default 4G)] [--quick (3 rounds of 1G)]');
  process.exit(0);
}
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const QUICK = args.includes('--quick');
const ROUNDS = Number(opt('--rounds', QUICK ? 3 : 5));
const SIZE_ARG = opt('--size', QUICK ? '1G' : '4G');
const UNIT = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };
const m = /^(\d+)([KMG]?)$/i.exec(SIZE_ARG);
if (!m) throw new Error(`--size ${SIZE_ARG}: give bytes, or a number with K, M or G`);
const SIZE = Number(m[1]) * UNIT[m[2].toUpperCase()];
const GIB = SIZE / 1024 ** 3;

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist', 'cli.js');
const TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
/** A port free on loopback now (the kernel's pick), for a server started right after. */
async function freePort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}
const PORT = { longhaul: await freePort(), iperf: await freePort(), gridftp: await freePort() };
const have = (cmd) => spawnSync('bash', ['-c', `command -v ${cmd}`]).status === 0;
const first = (cmd) => spawnSync('bash', ['-c', cmd], { encoding: 'utf8' }).stdout.split('\n')[0].trim();

/** CPU seconds of a process and of the children it has reaped. */
function procCpu(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14-17 of stat (utime, stime, cutime, cstime), counted from the state (field 3).
  return f.slice(11, 15).reduce((a, v) => a + Number(v), 0) / TCK;
}

function startServer(name, cmd, argv, ready) {
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const up = new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}): ${err.slice(-500)}`)));
    if (ready) createInterface({ input: child.stdout }).on('line', (l) => ready(l) && resolve());
    else setTimeout(resolve, 1500);
  });
  return up.then(() => ({ name, child, pid: child.pid }));
}

async function stopServer(s) {
  if (!s || s.child.exitCode !== null) return;
  const signal = (sig) => {
    try {
      process.kill(s.pid, sig);
    } catch {} // already gone
  };
  const gone = new Promise((r) => s.child.once('exit', r));
  signal('SIGTERM');
  await Promise.race([gone, sleep(5000)]);
  if (s.child.exitCode === null) signal('SIGKILL');
}

let calls = 0;
/** Runs argv under /usr/bin/time: wall seconds, the command's CPU seconds, its stdout. */
function timed(argv) {
  const out = join(tmpdir(), `longhaul-bench-net-${process.pid}-${calls++}`);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', out, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) return reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr.slice(-500)}`));
      const [u, s] = readFileSync(out, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
      rmSync(out, { force: true });
      resolve({ wall, cpu: u + s, stdout });
    });
  });
}

const longhaul = (extra) => async () => {
  const r = await timed([process.execPath, CLI, 'bench', `127.0.0.1:${PORT.longhaul}`, '--size', String(SIZE), '--json', ...extra]);
  const s = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((l) => l.type === 'summary');
  return { wall: r.wall, seconds: s.seconds, clientCpu: r.cpu, selfCpu: { client: s.clientCpu.seconds, node: s.nodeCpu?.seconds } };
};

async function iperf() {
  const r = await timed(['iperf3', '-c', '127.0.0.1', '-p', String(PORT.iperf), '-n', String(SIZE), '-P', '1', '-J']);
  const end = JSON.parse(r.stdout).end.sum_received;
  return { wall: r.wall, seconds: end.seconds, clientCpu: r.cpu };
}

async function gridftp() {
  const r = await timed(['globus-url-copy', '-len', String(SIZE), 'file:///dev/zero', `ftp://127.0.0.1:${PORT.gridftp}/dev/null`]);
  return { wall: r.wall, seconds: r.wall, clientCpu: r.cpu };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

const work = mkdtempSync(join(tmpdir(), 'longhaul-bench-net-'));
const servers = {};
const results = {};
try {
  const root = join(work, 'root');
  mkdirSync(root);
  servers.longhaul = await startServer('longhaul', process.execPath, [CLI, 'serve', '--root', root, '--listen', `127.0.0.1:${PORT.longhaul}`, '--no-auth', '--json', '--log-level', 'warn'], (l) =>
    l.includes('"port"'),
  );
  servers.iperf = await startServer('iperf3', 'iperf3', ['-s', '-B', '127.0.0.1', '-p', String(PORT.iperf)]);
  const gridftpOk = have('globus-url-copy') && have('globus-gridftp-server');
  if (gridftpOk) {
    servers.gridftp = await startServer('gridftp', 'globus-gridftp-server', [
      '-aa', '-anonymous-user', 'nobody', '-anonymous-group', 'nogroup', '-p', String(PORT.gridftp),
      '-control-interface', '127.0.0.1', '-data-interface', '127.0.0.1', '-d', 'error',
    ]);
  }
  const tools = [
    { name: 'iperf3 -P 1', cmd: `iperf3 -c 127.0.0.1 -p PORT -n ${SIZE} -P 1 (server: iperf3 -s)`, run: iperf, server: 'iperf' },
    { name: 'longhaul bench (defaults)', cmd: `longhaul bench 127.0.0.1:PORT --size ${SIZE}`, run: longhaul([]), server: 'longhaul' },
    { name: 'longhaul bench --streams 1', cmd: `longhaul bench 127.0.0.1:PORT --size ${SIZE} --streams 1`, run: longhaul(['--streams', '1']), server: 'longhaul' },
    ...(gridftpOk
      ? [
          {
            name: 'GridFTP /dev/zero → /dev/null',
            cmd: `globus-url-copy -len ${SIZE} file:///dev/zero ftp://127.0.0.1:PORT/dev/null (server: globus-gridftp-server -aa)`,
            run: gridftp,
            server: 'gridftp',
          },
        ]
      : []),
  ];
  for (const t of tools) results[t.name] = { cmd: t.cmd, runs: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const order = tools.map((_, i) => tools[(i + round) % tools.length]);
    for (const t of order) {
      const pid = servers[t.server].pid;
      const before = procCpu(pid);
      const r = await t.run();
      // The server's CPU is counted once it has finished with the session (GridFTP reaps its child).
      await sleep(300);
      const serverCpu = procCpu(pid) - before;
      const run = { ...r, serverCpu, gbit: (SIZE * 8) / r.seconds / 1e9 };
      results[t.name].runs.push(run);
      console.error(`round ${round + 1}/${ROUNDS} ${t.name}: ${r.seconds.toFixed(2)} s, ${run.gbit.toFixed(2)} Gbit/s, cpu client ${(r.clientCpu / GIB).toFixed(3)} s/GiB, server ${(serverCpu / GIB).toFixed(3)} s/GiB`);
    }
  }
} finally {
  for (const s of Object.values(servers)) await stopServer(s);
  rmSync(work, { recursive: true, force: true });
}

const iperfRate = median(results['iperf3 -P 1'].runs.map((r) => r.gbit));
const rows = Object.entries(results).map(([name, { cmd, runs }]) => {
  const med = (f) => median(runs.map(f));
  const self = runs[0].selfCpu
    ? ` (its own count: client ${(med((r) => r.selfCpu.client) / GIB).toFixed(3)}, node ${(med((r) => r.selfCpu.node) / GIB).toFixed(3)})`
    : '';
  return {
    name,
    cmd,
    runs,
    wall: med((r) => r.wall),
    seconds: med((r) => r.seconds),
    gbit: med((r) => r.gbit),
    gbitRange: [Math.min(...runs.map((r) => r.gbit)), Math.max(...runs.map((r) => r.gbit))],
    ratio: med((r) => r.gbit) / iperfRate,
    clientPerGiB: med((r) => r.clientCpu) / GIB,
    serverPerGiB: med((r) => r.serverCpu) / GIB,
    self,
  };
});
const machine = {
  cpus: first('nproc'),
  model: first("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
  kernel: first('uname -r'),
  congestion: first('sysctl -n net.ipv4.tcp_congestion_control'),
  iperf3: first('iperf3 --version'),
  gridftp: have('globus-url-copy') ? first('globus-url-copy -version 2>&1') : 'not installed',
  node: process.version,
};
console.log(`\nnetwork-only, loopback: ${SIZE_ARG} per run, median of ${ROUNDS} interleaved rounds; ${machine.cpus} CPUs (${machine.model}), Linux ${machine.kernel}\n`);
console.log('| tool | wall s (process) | transfer s | Gbit/s (min-max) | x iperf3 -P 1 | client CPU s/GiB | server CPU s/GiB |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows)
  console.log(
    `| ${r.name} | ${r.wall.toFixed(2)} | ${r.seconds.toFixed(2)} | ${r.gbit.toFixed(2)} (${r.gbitRange[0].toFixed(2)}-${r.gbitRange[1].toFixed(2)}) | ${r.ratio.toFixed(2)} | ${r.clientPerGiB.toFixed(3)} | ${r.serverPerGiB.toFixed(3)}${r.self} |`,
  );
console.log('\ncommands:');
for (const r of rows) console.log(`  ${r.name}: ${r.cmd}`);
mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
// A run never overwrites an earlier one's raw figures: the second of the day is -2, and so on.
const stem = join(import.meta.dirname, 'results', `${new Date().toISOString().slice(0, 10)}-net-${machine.cpus}vcpu`);
let file = `${stem}.json`;
for (let n = 2; existsSync(file); n++) file = `${stem}-${n}.json`;
writeFileSync(file, `${JSON.stringify({ size: SIZE, rounds: ROUNDS, machine, rows }, null, 1)}\n`);
console.log(`\nraw runs: ${file}`);

// longhaul against its peers on the same work, in one run (`npm run bench`, `-- --quick`).
//
// Workloads (generated in a temp dir, never in the repo): BIG (one random file, page-cached),
// LOSF (many 4 KiB files in many directories), MIXED (a long-tailed mix like a source tree plus
// build outputs). Every tool moves the same source over 127.0.0.1 into a fresh destination per
// run; only the transfer is timed; runs are interleaved (run 1 of every tool, then run 2, ...);
// each tool's first output is compared byte for byte with the source (`diff -r`); servers are
// started once and stopped by their PID. CPU seconds come from /usr/bin/time for the sending
// client and from /proc/PID/stat (threads and reaped children) for the receiving server.
//
// The ext4 here has no journal, and creating files soon after many were deleted is ~10x slower.
// So used tree destinations are never deleted during the run: their files are truncated to 0
// (blocks freed, inodes kept) and everything is deleted at the end, directory by directory. The
// next bench run waits until that deletion is 7 minutes old, then writes back and drops the page
// cache (as root) and reads its sources back in (workloads.mjs, `coolDown`).
//
// `--quick` is a smoke run of the whole bench on small workloads, in under two minutes: it skips
// both waits (the ext4 cool-down, and the wait before each run for freed memory to go back to
// the host), so its timings show that every tool runs and verifies, not the ratios.
//
//   node bench/compare.mjs [--quick] [--runs N] [--only BIG,LOSF,MIXED] [--tools a,b] [--before DIR]
//                          [--dir /tmp] [--no-install] [--no-write]
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync,
  statSync, truncateSync, writeFileSync, chmodSync,
} from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';

import { benchOptions, cpuTimes, hostMemorySettled, hostReturnedMiB } from './data.mjs';
import { coolDown, markDeleted, readIntoCache, workloads } from './workloads.mjs';

const args = benchOptions(import.meta.filename, {
  quick: { type: 'boolean' },
  runs: { type: 'string' },
  only: { type: 'string', default: 'BIG,LOSF,MIXED' },
  tools: { type: 'string', default: '' },
  // Another checkout of longhaul, built (`npm run build` there): its CLI runs as one more tool,
  // "longhaul before (defaults)", interleaved with this one, for a before/after in one run.
  before: { type: 'string' },
  dir: { type: 'string', default: tmpdir() },
  'no-install': { type: 'boolean' },
  'no-write': { type: 'boolean' },
});
const QUICK = args.quick;
const RUNS = Number(args.runs ?? (QUICK ? 2 : 5));
const ONLY = args.only.split(',');
const TOOLS = args.tools.split(',').filter(Boolean);
const REPO = join(import.meta.dirname, '..');
const CLI = join(REPO, 'dist', 'cli.js');
const BEFORE_CLI = args.before ? join(args.before, 'dist', 'cli.js') : null;
const NODECOPY = join(REPO, 'bench', 'nodecopy.mjs');
const NETNS = 'longhaul-bench';
const MiB = 2 ** 20;
const GiB = 2 ** 30;

const log = (...a) => console.error(...a);
const sh = (cmd) => spawnSync('bash', ['-c', cmd], { encoding: 'utf8' });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- peers: installed from Debian's packages when missing ----------------------------------
const PEERS = [
  ['iperf3', 'iperf3'], ['fio', 'fio'], ['rsync', 'rsync'], ['nc', 'netcat-openbsd'],
  ['globus-gridftp-server', 'globus-gridftp-server-progs'], ['globus-url-copy', 'globus-gass-copy-progs'],
  ['xrootd', 'xrootd-server'], ['xrdcp', 'xrootd-client'], ['/usr/bin/time', 'time'], ['ip', 'iproute2'],
];
function ensurePeers() {
  const missing = [...new Set(PEERS.filter(([bin]) => sh(`command -v ${bin}`).status !== 0).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  const cmd = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (args['no-install'] || process.getuid?.() !== 0 || sh('command -v apt-get').status !== 0) {
    throw new Error(`the bench needs ${missing.join(', ')}: run \`sudo ${cmd}\``);
  }
  log(`installing the peers: ${cmd}`);
  const r = spawnSync('bash', ['-c', `apt-get update -q && ${cmd}`], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) throw new Error(`${cmd} failed`);
}

function versions() {
  const first = (cmd) => {
    const r = sh(cmd);
    return (r.stdout + r.stderr).trim().split('\n')[0];
  };
  return {
    longhaul: JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version + ` (${sh(`git -C ${REPO} rev-parse --short HEAD`).stdout.trim()})`,
    node: process.version,
    'globus-gridftp-server': first('globus-gridftp-server -version 2>&1'),
    'globus-url-copy': first('globus-url-copy -version 2>&1'),
    xrootd: first('xrootd -v 2>&1'),
    xrdcp: first('xrdcp --version 2>&1'),
    rsync: first('rsync --version'),
    nc: first('dpkg-query -W netcat-openbsd'),
    tar: first('tar --version'),
    iperf3: first('iperf3 --version'),
    fio: first('fio --version'),
  };
}

function machine() {
  const fs = sh(`findmnt -no FSTYPE,OPTIONS -T ${tmpdir()}`).stdout.trim();
  const journal = sh(`dumpe2fs -h $(findmnt -no SOURCE -T ${tmpdir()}) 2>/dev/null | grep -c has_journal`).stdout.trim();
  return {
    cpu: `${cpus().length} x ${cpus()[0].model}`,
    memGiB: Math.round(totalmem() / GiB),
    kernel: sh('uname -r').stdout.trim(),
    fs: `${fs.split(' ')[0]}${journal === '0' ? ' without a journal' : ''}`,
  };
}

// ---- workloads --------------------------------------------------------------------------------
const WORKLOADS = workloads(QUICK);
function treeStats(path) {
  const st = statSync(path);
  if (st.isFile()) return { files: 1, bytes: st.size };
  let files = 0;
  let bytes = 0;
  for (const e of readdirSync(path, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    files++;
    bytes += statSync(join(e.parentPath, e.name)).size;
  }
  return { files, bytes };
}

// ---- processes ---------------------------------------------------------------------------------
const TICK = Number(sh('getconf CLK_TCK').stdout) || 100;
function procCpu(pid) {
  // utime, stime, cutime, cstime: the process's threads and its reaped children.
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICK;
}
function startServer(name, cmd, args, { ready, env } = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  child.stderr.on('data', (d) => (out += d));
  const lines = createInterface({ input: child.stdout });
  const up = new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}): ${out.slice(-500)}`)));
    if (typeof ready === 'function') lines.on('line', (l) => ready(l) && resolve());
    else setTimeout(resolve, ready ?? 1500);
  });
  return up.then(() => ({ name, pid: child.pid, child, cpu: () => procCpu(child.pid) }));
}
async function stopServer(s) {
  const signal = (sig) => {
    try {
      process.kill(s.pid, sig);
    } catch {} // already gone
  };
  if (!s || s.child.exitCode !== null) return;
  const gone = new Promise((r) => s.child.once('exit', r));
  signal('SIGTERM');
  await Promise.race([gone, sleep(5000)]);
  if (s.child.exitCode === null) signal('SIGKILL'); // never left running
}
let timedCalls = 0;
function timed(argv, { netns } = {}) {
  // Runs argv under /usr/bin/time; resolves to wall seconds and the command's CPU seconds. Each
  // call has its own output file: `tar | nc` times both ends at once.
  const out = join(tmpdir(), `longhaul-bench-time-${process.pid}-${timedCalls++}`);
  const full = [...(netns ? ['ip', 'netns', 'exec', NETNS] : []), '/usr/bin/time', '-f', '%U %S', '-o', out, ...argv];
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(full[0], full.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) return reject(new Error(`${argv.join(' ')} exited ${code}: ${err.slice(-500)}`));
      const [u, s] = readFileSync(out, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
      rmSync(out, { force: true });
      resolve({ wall, cpu: u + s });
    });
  });
}

// ---- the tools ---------------------------------------------------------------------------------
// Each tool: which workloads, a server key (long-lived receiver) or none, the command (for the
// report), how to run one transfer of SRC into the fresh directory DIR, and where the copy lands.
const port0 = 20000 + Math.floor(Math.random() * 20000);
const PORT = { longhaul: port0, gridftp: port0 + 1, xrootd: port0 + 2, rsync: port0 + 3, node: port0 + 4, nc: port0 + 5, iperf: port0 + 6, before: port0 + 7 };
const isFile = (src) => statSync(src).isFile();
const contents = (src, dir) => (isFile(src) ? join(dir, basename(src)) : dir);
const named = (src, dir) => join(dir, basename(src));

function tools(dst) {
  const rel = (dir) => dir.slice(dst.length + 1);
  const url = (dir, src, scheme) => (isFile(src) ? `${scheme}${dir}/${basename(src)}` : `${scheme}${dir}/`);
  const gridftp = (flags) => ({
    server: 'gridftp',
    cmd: (src) => `globus-url-copy ${flags.join(' ')} file://${src}${isFile(src) ? '' : '/'} ftp://127.0.0.1:PORT/DEST/`,
    run: (src, dir) => timed(['globus-url-copy', ...flags, `file://${src}${isFile(src) ? '' : '/'}`, url(dir, src, `ftp://127.0.0.1:${PORT.gridftp}`)]),
    land: contents,
  });
  const xrdcp = (flags) => ({
    server: 'xrootd',
    cmd: (src) => `xrdcp ${flags.join(' ')} ${src} root://127.0.0.1:PORT/DEST/`,
    run: (src, dir) => timed(['xrdcp', '-s', ...flags, src, url(dir, src, `root://127.0.0.1:${PORT.xrootd}/`)], { netns: true }),
    land: (src, dir) => (isFile(src) ? contents(src, dir) : named(src, dir)),
  });
  return [
    // Limits.
    { name: 'iperf3 (network)', limit: true, only: ['BIG'], cmd: () => 'iperf3 -c 127.0.0.1 -n SIZE', run: iperf, rate: true },
    // Two write sizes: the kernel sizes page-cache folios by the write, and on these VMs 1 MiB
    // writes cost 2.5x the CPU of 256 KiB ones (RESULTS.md, "page-cache writes"). The target
    // is judged against the faster.
    { name: 'fio (page-cache write)', limit: true, only: ['BIG'], cmd: () => 'fio --rw=write --bs=256k --ioengine=psync --size=SIZE', run: fio('256k'), rate: true },
    { name: 'fio --bs=1M (page-cache write)', limit: true, only: ['BIG'], cmd: () => 'fio --rw=write --bs=1M --ioengine=psync --size=SIZE', run: fio('1M'), rate: true },
    { name: 'read (cat > /dev/null)', limit: true, only: ['BIG'], cmd: (src) => `cat ${basename(src)} > /dev/null`, run: (src) => timed(['bash', '-c', `cat ${src} > /dev/null`]) },
    { name: 'read (tar -c | cat > /dev/null)', limit: true, only: ['LOSF', 'MIXED'], cmd: () => 'tar -cf - -C SRC . | cat > /dev/null', run: (src) => timed(['bash', '-c', `tar -cf - -C ${src} . | cat > /dev/null`]) },
    { name: 'cp (local copy)', limit: true, cmd: () => 'cp -r SRC DEST/', run: (src, dir) => timed(['cp', '-r', src, `${dir}/`]), land: named },
    { name: 'tar | tar (local copy)', limit: true, only: ['LOSF', 'MIXED'], cmd: () => 'tar -cf - -C SRC . | tar -xf - -C DEST', run: (src, dir) => timed(['bash', '-c', `tar -cf - -C ${src} . | tar -xf - -C ${dir}`]), land: contents },
    // longhaul, default settings.
    {
      name: 'longhaul (defaults)',
      server: 'longhaul',
      cmd: () => 'longhaul send SRC 127.0.0.1:PORT/DEST -q',
      run: (src, dir) => timed([process.execPath, CLI, 'send', src, `127.0.0.1:${PORT.longhaul}/${rel(dir)}`, '-q']),
      land: (src, dir) => (isFile(src) ? contents(src, dir) : named(src, dir)),
    },
    ...(BEFORE_CLI
      ? [
          {
            name: 'longhaul before (defaults)',
            server: 'before',
            cmd: () => `longhaul send SRC 127.0.0.1:PORT/DEST -q (${args.before})`,
            run: (src, dir) => timed([process.execPath, BEFORE_CLI, 'send', src, `127.0.0.1:${PORT.before}/${rel(dir)}`, '-q']),
            land: (src, dir) => (isFile(src) ? contents(src, dir) : named(src, dir)),
          },
        ]
      : []),
    // Peers.
    { name: 'GridFTP (defaults)', only: ['BIG'], ...gridftp([]) },
    { name: 'GridFTP -p 4', only: ['BIG'], ...gridftp(['-p', '4']) },
    { name: 'GridFTP -p 4 -fast -tcp-bs 16M', only: ['BIG'], ...gridftp(['-p', '4', '-fast', '-tcp-bs', '16M']) },
    { name: 'GridFTP -r -cc 4 -pp -fast', only: ['LOSF', 'MIXED'], ...gridftp(['-r', '-cd', '-cc', '4', '-pp', '-fast']) },
    { name: 'xrdcp (defaults)', only: ['BIG'], ...xrdcp([]) },
    { name: 'xrdcp -S 4', only: ['BIG'], ...xrdcp(['-S', '4']) },
    { name: 'xrdcp -r --parallel 4', only: ['LOSF', 'MIXED'], ...xrdcp(['-r', '--parallel', '4']) },
    {
      name: 'rsync daemon -a -W',
      server: 'rsync',
      cmd: (src) => `rsync -a -W ${isFile(src) ? 'SRC' : 'SRC/'} rsync://127.0.0.1:PORT/bench/DEST/`,
      run: (src, dir) => timed(['rsync', '-a', '-W', isFile(src) ? src : `${src}/`, `rsync://127.0.0.1:${PORT.rsync}/bench/${rel(dir)}/`]),
      land: contents,
    },
    { name: 'tar | nc', cmd: () => 'nc -l 127.0.0.1 PORT | tar -xf - -C DEST & tar -cf - -C SRC . | nc -N 127.0.0.1 PORT', run: tarNc, land: contents },
    {
      name: 'Node.js streams (net + fs)',
      server: 'node',
      cmd: () => 'node bench/nodecopy.mjs send SRC PORT DEST',
      run: (src, dir) => timed([process.execPath, NODECOPY, 'send', src, String(PORT.node), rel(dir)]),
      land: contents,
    },
  ];
}

async function iperf(src) {
  const size = statSync(src).size;
  const server = spawn('iperf3', ['-s', '-1', '-B', '127.0.0.1', '-p', String(PORT.iperf)], { stdio: 'ignore' });
  await sleep(300);
  const r = spawnSync('iperf3', ['-c', '127.0.0.1', '-p', String(PORT.iperf), '-n', String(size), '-J'], { encoding: 'utf8' });
  await new Promise((res) => (server.exitCode === null ? server.once('exit', res) : res()));
  const bps = JSON.parse(r.stdout).end.sum_received.bits_per_second;
  return { wall: (size * 8) / bps, cpu: NaN };
}
const fio = (bs) => async (src, dir) => {
  const size = statSync(src).size;
  const r = spawnSync('fio', ['--name=write', `--filename=${join(dir, 'fio.bin')}`, '--rw=write', `--bs=${bs}`, `--size=${size}`, '--ioengine=psync', '--fallocate=none', '--output-format=json'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`fio: ${r.stderr}`);
  const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
  return { wall: size / job.write.bw_bytes, cpu: (job.usr_cpu + job.sys_cpu) / 100 * (job.job_runtime / 1000) };
};
async function tarNc(src, dir) {
  const [srcDir, what] = isFile(src) ? [join(src, '..'), basename(src)] : [src, '.'];
  const recv = timed(['bash', '-c', `nc -l 127.0.0.1 ${PORT.nc} | tar -xf - -C ${dir}`]);
  await sleep(200); // nc -l is listening (a probe connection would be its one connection)
  const t0 = process.hrtime.bigint();
  const send = await timed(['bash', '-c', `tar -cf - -C ${srcDir} ${what} | nc -N 127.0.0.1 ${PORT.nc}`]);
  const got = await recv;
  return { wall: Number(process.hrtime.bigint() - t0) / 1e9, cpu: send.cpu, recvCpu: got.cpu };
}

async function startServers(dst, wanted) {
  const servers = {};
  if (wanted.has('longhaul')) {
    servers.longhaul = await startServer('longhaul', process.execPath, [CLI, 'serve', '--root', dst, '--listen', `127.0.0.1:${PORT.longhaul}`, '--no-auth', '--json'], { ready: (l) => l.includes('"port"') });
  }
  if (wanted.has('before')) {
    servers.before = await startServer('before', process.execPath, [BEFORE_CLI, 'serve', '--root', dst, '--listen', `127.0.0.1:${PORT.before}`, '--no-auth', '--json'], { ready: (l) => l.includes('"port"') });
  }
  if (wanted.has('gridftp')) {
    servers.gridftp = await startServer('gridftp', 'globus-gridftp-server', ['-aa', '-anonymous-user', 'nobody', '-anonymous-group', 'nogroup', '-p', String(PORT.gridftp), '-control-interface', '127.0.0.1', '-data-interface', '127.0.0.1', '-d', 'error']);
  }
  if (wanted.has('xrootd')) {
    // xrootd will not run as root nor bind 127.0.0.1 alone: it runs as nobody in a private
    // network namespace with only loopback, where its clients run too.
    sh(`ip netns del ${NETNS} 2>/dev/null; ip netns add ${NETNS} && ip netns exec ${NETNS} ip link set lo up`);
    const cfg = join(dst, '..', 'xrootd.cfg');
    mkdirSync(join(dst, '..', 'xrootd-log'), { recursive: true, mode: 0o777 });
    chmodSync(join(dst, '..', 'xrootd-log'), 0o777);
    writeFileSync(cfg, `all.export ${dst}\nxrd.port ${PORT.xrootd}\n`);
    servers.xrootd = await startServer('xrootd', 'ip', ['netns', 'exec', NETNS, 'setpriv', '--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups', 'xrootd', '-c', cfg, '-l', join(dst, '..', 'xrootd-log', 'xrootd.log')]);
  }
  if (wanted.has('rsync')) {
    const cfg = join(dst, '..', 'rsyncd.conf');
    writeFileSync(cfg, `use chroot = no\n[bench]\n  path = ${dst}\n  read only = no\n  uid = root\n  gid = root\n`);
    servers.rsync = await startServer('rsync', 'rsync', ['--daemon', '--no-detach', `--config=${cfg}`, `--port=${PORT.rsync}`, '--address=127.0.0.1']);
  }
  if (wanted.has('node')) {
    servers.node = await startServer('node', process.execPath, [NODECOPY, 'serve', String(PORT.node), dst], { ready: (l) => l === 'listening' });
  }
  return servers;
}

// ---- one workload --------------------------------------------------------------------------------
let created = 0; // files made in destinations, deleted at the end
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function emptyTree(path) {
  // Frees the data blocks of a used destination but keeps its inodes (see the top).
  if (!existsSync(path)) return;
  if (statSync(path).isFile()) return rmSync(path);
  for (const e of readdirSync(path, { recursive: true, withFileTypes: true })) if (e.isFile()) truncateSync(join(e.parentPath, e.name), 0);
}

async function workload(name, src, dst, list, servers) {
  const { files, bytes } = treeStats(src);
  const rows = list.map((t) => ({ tool: t, runs: [], error: null, verified: null }));
  const base = join(dst, name);
  mkdirSync(base, { recursive: true, mode: 0o777 });
  chmodSync(base, 0o777);
  for (let run = 1; run <= RUNS; run++) {
    for (const row of rows) {
      if (row.error) continue;
      const t = row.tool;
      const dir = join(base, `${t.name.replace(/[^A-Za-z0-9]+/g, '-')}-${run}`);
      mkdirSync(dir, { mode: 0o777 });
      chmodSync(dir, 0o777);
      // The sources are timed page-cached: the tree workloads before BIG write ~50 GiB, and each
      // BIG run 4 GiB, which can push a source out of the cache (a full run of 2026-12-05 read
      // BIG's in 8.8 s instead of ~0.5 s). Reading it again costs little where it is cached.
      readIntoCache(src);
      sh('sync');
      // Every run starts with the memory freed before it already handed back to the host.
      if (!QUICK) await hostMemorySettled();
      const server = t.server ? servers[t.server] : null;
      try {
        const before = server ? server.cpu() : 0;
        const { steal: steal0 } = cpuTimes();
        const returned0 = hostReturnedMiB();
        const r = await t.run(src, dir);
        const steal = cpuTimes().steal - steal0;
        const returned = hostReturnedMiB() - returned0;
        await sleep(200); // reaped children (GridFTP, rsync fork per connection) are counted
        const recvCpu = r.recvCpu ?? (server ? server.cpu() - before : NaN);
        // The share of the machine's CPU time the host gave to other guests during the run.
        const stolen = steal / (r.wall * cpus().length);
        row.runs.push({ wall: r.wall, sendCpu: r.cpu, recvCpu, stolen, returned });
        if (t.land) created += files;
        log(`  ${name} run ${run} ${t.name}: ${r.wall.toFixed(2)} s (host steal ${(100 * stolen).toFixed(0)}%, ${returned.toFixed(0)} MiB handed back to the host)`);
        if (run === 1 && t.land) {
          const landed = t.land(src, dir);
          const d = spawnSync('diff', ['-rq', '--no-dereference', src, landed], { encoding: 'utf8' });
          row.verified = d.status === 0;
          if (!row.verified) throw new Error(`output differs from the source: ${(d.stdout + d.stderr).slice(0, 300)}`);
        }
      } catch (e) {
        row.error = e.message.split('\n')[0].slice(0, 200);
        log(`  ${name} ${t.name}: FAILED ${row.error}`);
      }
      emptyTree(dir);
      if (t.name.startsWith('fio')) rmSync(join(dir, 'fio.bin'), { force: true });
    }
  }
  return {
    name,
    what: WORKLOADS[name].what,
    files,
    bytes,
    rows: rows.map(({ tool, runs, error, verified }) => {
      const walls = runs.map((r) => r.wall);
      const gib = bytes / GiB;
      return {
        tool: tool.name,
        limit: !!tool.limit,
        command: tool.cmd(src).replaceAll(src, 'SRC'),
        runs: runs.length,
        error,
        verified,
        seconds: runs.length ? { median: median(walls), min: Math.min(...walls), max: Math.max(...walls) } : null,
        MiBps: runs.length ? bytes / MiB / median(walls) : null,
        filesPerSec: runs.length ? files / median(walls) : null,
        sendCpuPerGiB: runs.length ? median(runs.map((r) => r.sendCpu)) / gib : null,
        recvCpuPerGiB: runs.length ? median(runs.map((r) => r.recvCpu)) / gib : null,
        stolen: runs.length ? median(runs.map((r) => r.stolen)) : null,
        returnedMiB: runs.length ? median(runs.map((r) => r.returned ?? 0)) : null,
      };
    }),
  };
}

// ---- targets and the report --------------------------------------------------------------------
function targets(w) {
  const row = (re) => w.rows.filter((r) => re.test(r.tool) && r.seconds);
  const best = (re) => row(re).sort((a, b) => a.seconds.median - b.seconds.median)[0];
  const lh = best(/^longhaul/);
  if (!lh) return [];
  const out = [];
  const ratio = (label, other, need, key = 'MiBps') => {
    if (!other) return out.push({ label, need, got: null });
    out.push({ label: `${label} (${other.tool})`, need, got: lh[key] / other[key] });
  };
  if (w.name === 'BIG') {
    ratio('vs fio page-cache write', best(/^fio/), 0.9);
    ratio('vs GridFTP, best setting', best(/^GridFTP/), 1.2);
    ratio('vs xrdcp, best setting', best(/^xrdcp/), 1.3);
    ratio('vs Node.js streams', best(/^Node/), 3);
    const g = best(/^GridFTP/);
    if (g) out.push({ label: `CPU s/GiB, both ends, GridFTP / longhaul (${g.tool})`, need: 1, got: (g.sendCpuPerGiB + g.recvCpuPerGiB) / (lh.sendCpuPerGiB + lh.recvCpuPerGiB), strict: true });
  } else if (w.name === 'LOSF') {
    ratio('files/s vs local tar | tar', best(/^tar \| tar/), 1.0, 'filesPerSec');
    ratio('files/s vs rsync', best(/^rsync/), 3, 'filesPerSec');
    ratio('files/s vs tar | nc', best(/^tar \| nc/), 1.5, 'filesPerSec');
  } else {
    for (const r of w.rows.filter((r) => !r.limit && r.seconds && !/^longhaul/.test(r.tool))) ratio('vs', r, 1, 'MiBps');
    const last = out.length;
    if (last) out.forEach((t) => (t.strict = true));
  }
  return out.map((t) => ({ ...t, met: t.got !== null && (t.strict ? t.got > t.need : t.got >= t.need) }));
}

const n = (x, d = 0) => (x === null || Number.isNaN(x) ? '–' : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
function markdown(res) {
  const lines = [];
  lines.push(`## longhaul against its peers (\`npm run bench${QUICK ? ' -- --quick' : ''}\`)`, '');
  lines.push(`- Machine: ${res.machine.cpu}, ${res.machine.memGiB} GiB RAM, Linux ${res.machine.kernel}, ${res.machine.fs}; every tool over 127.0.0.1 (XRootD in a private network namespace with only loopback, as it cannot bind 127.0.0.1 alone and will not run as root).`);
  lines.push(`- Method: \`npm run bench\` runs \`node bench/compare.mjs\` (each workload's own command and date are under its heading); runs interleaved (run 1 of every tool, then run 2, ...); median (min–max) of the wall time of the transfer alone; a fresh destination per run; each tool's first copy compared with \`diff -r\`. CPU: the sender from \`/usr/bin/time\`, the receiving server from /proc (its threads and reaped children), seconds per GiB moved. Host steal: the median share of the machine's CPU time that the hypervisor gave to other guests during the tool's runs (/proc/stat); where it is high, every tool in those minutes was slowed. Handed back: the median MiB of free memory the guest returned to the host during the tool's runs (free page reporting); a run during which that happens typically takes 2-3x as long (section "memory the host takes back"). Before each run the bench waits until that count has been still for 2.5 s, so that every tool starts with what the run before it freed already handed back (cold for all alike): without the wait, the tool that ran right after a large free got warm pages and the one after it cold ones. Raw figures: \`${res.json}\`.`);
  lines.push(`- Used destinations are emptied (truncated, inodes kept) and deleted only at the end: deleting many files on this ext4 without a journal makes creating files ~10x slower for minutes afterwards, which would measure the file system, not the tools. The next run waits until that deletion is 7 minutes old, then writes back and drops the page cache (as root) and reads its sources back in: waiting alone, and dropping right after the deletion, were each seen to leave creation slow.`);
  lines.push(`- Versions: ${Object.entries(res.versions).map(([k, v]) => `${k} ${v.replace(/^.*?(\d[\w.\-+~]*).*$/, '$1')}`).join(', ')}.`, '');
  for (const w of res.workloads) {
    lines.push(`### ${w.name}: ${w.what} (${n(w.files)} files, ${n(w.bytes / MiB)} MiB)`, '');
    lines.push(`${w.date}, \`${w.command}\`, ${w.runs} runs per tool.`, '');
    lines.push('| tool | MiB/s | files/s | seconds, median (min–max) | CPU s/GiB sender | CPU s/GiB receiver | host steal | handed back, MiB | command |', '| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |');
    for (const r of w.rows) {
      const tool = r.tool.replaceAll('|', '\\|');
      const name = r.limit ? `_${tool}_` : /^longhaul/.test(tool) ? `**${tool}**` : tool;
      if (r.error) lines.push(`| ${name} | failed: ${r.error.replaceAll('|', '\\|')} | | | | | | | \`${r.command.replaceAll('|', '\\|')}\` |`);
      else lines.push(`| ${name} | ${n(r.MiBps)} | ${n(r.filesPerSec)} | ${n(r.seconds.median, 2)} (${n(r.seconds.min, 2)}–${n(r.seconds.max, 2)}) | ${n(r.sendCpuPerGiB, 2)} | ${n(r.recvCpuPerGiB, 2)} | ${r.stolen === null || r.stolen === undefined ? '–' : `${n(100 * r.stolen)}%`} | ${r.returnedMiB === null || r.returnedMiB === undefined ? '–' : n(r.returnedMiB)} | \`${r.command.replaceAll('|', '\\|')}\` |`);
    }
    lines.push('');
    if (w.targets.length) {
      lines.push('| target | needed | measured | met |', '| --- | ---: | ---: | --- |');
      for (const t of w.targets) lines.push(`| ${t.label.replaceAll('|', '\\|')} | ${t.strict ? '>' : '≥'} ${t.need}x | ${t.got === null ? '–' : `${n(t.got, 2)}x`} | ${t.met ? 'yes' : '**no**'} |`);
      lines.push('');
    }
  }
  return lines.join('\n');
}

// ---- main ----------------------------------------------------------------------------------------
async function main() {
  if (process.platform !== 'linux') throw new Error('the bench runs on Linux');
  if (!existsSync(CLI)) throw new Error('build first: npm run build');
  if (BEFORE_CLI && !existsSync(BEFORE_CLI)) throw new Error(`build ${args.before} first: npm run build there`);
  ensurePeers();
  const work = mkdtempSync(join(args.dir, 'longhaul-compare-'));
  chmodSync(work, 0o755);
  const srcDir = join(work, 'src');
  const dst = join(work, 'dst');
  mkdirSync(srcDir, { mode: 0o755 });
  mkdirSync(dst, { mode: 0o777 });
  chmodSync(dst, 0o777);
  const all = tools(dst).filter((t) => TOOLS.length === 0 || TOOLS.some((x) => t.name.toLowerCase().includes(x.toLowerCase())));
  const servers = {};
  const result = { date: new Date().toISOString().slice(0, 10), quick: QUICK, runs: RUNS, machine: machine(), versions: versions(), workloads: [] };
  try {
    // Sources first, on a file system nothing was deleted from yet; then the tree workloads
    // (each run creates files), then BIG (one file per run).
    const order = ['LOSF', 'MIXED', 'BIG'].filter((w) => ONLY.includes(w));
    const srcs = {};
    for (const w of order) {
      log(`generating ${w}: ${WORKLOADS[w].what}`);
      srcs[w] = WORKLOADS[w].make(srcDir);
    }
    sh('sync');
    // Waits out a recent deletion and drops the page cache (as root; workloads.mjs); each run
    // reads its source back in before it is timed (`workload`).
    if (await coolDown(log, { creates: !QUICK && order.some((w) => w !== 'BIG') })) log('wrote back and dropped the page cache before timing (ext4 after deletions: workloads.mjs)');
    Object.assign(servers, await startServers(dst, new Set(all.map((t) => t.server).filter(Boolean))));
    for (const w of order) {
      const list = all.filter((t) => !t.only || t.only.includes(w));
      log(`${w}: ${list.length} tools x ${RUNS} runs`);
      const res = await workload(w, srcs[w], dst, list, servers);
      res.targets = targets(res);
      result.workloads.push(res);
    }
  } finally {
    for (const s of Object.values(servers)) await stopServer(s);
    sh(`kill $(ip netns pids ${NETNS} 2>/dev/null) 2>/dev/null; ip netns del ${NETNS} 2>/dev/null`);
    log('deleting the work trees, directory by directory');
    for (const top of [join(work, 'dst'), join(work, 'src')]) {
      if (!existsSync(top)) continue;
      for (const w of readdirSync(top)) for (const d of statSync(join(top, w)).isDirectory() ? readdirSync(join(top, w)) : ['']) rmSync(join(top, w, d), { recursive: true, force: true });
    }
    rmSync(work, { recursive: true, force: true });
    if (created > 50000) markDeleted();
  }
  // bench/results/compare.json keeps the latest full run of each workload (so `--only` runs
  // merge in); bench/RESULTS.md gets the tables between its compare markers.
  const stamp = `${result.date}-compare${QUICK ? '-quick' : ''}`;
  result.json = QUICK ? `bench/results/${stamp}.json` : 'bench/results/compare.json';
  const merged = QUICK || !existsSync(join(REPO, result.json)) ? { workloads: [] } : JSON.parse(readFileSync(join(REPO, result.json), 'utf8'));
  const command = `node bench/compare.mjs ${process.argv.slice(2).join(' ')}`.trim();
  for (const w of result.workloads) Object.assign(w, { date: result.date, command, runs: RUNS, machine: result.machine, versions: result.versions });
  merged.workloads = ['BIG', 'LOSF', 'MIXED'].map((name) => result.workloads.find((w) => w.name === name) ?? merged.workloads.find((w) => w.name === name)).filter(Boolean);
  const md = markdown({ ...result, workloads: merged.workloads });
  console.log(md);
  if (!args['no-write']) {
    writeFileSync(join(REPO, result.json), JSON.stringify(merged, null, 2) + '\n');
    if (!QUICK) {
      const path = join(REPO, 'bench', 'RESULTS.md');
      const doc = readFileSync(path, 'utf8');
      const [b, e] = ['<!-- compare:begin -->', '<!-- compare:end -->'];
      const section = `${b}\n${md}\n${e}`;
      writeFileSync(path, doc.includes(b) ? doc.slice(0, doc.indexOf(b)) + section + doc.slice(doc.indexOf(e) + e.length) : `${doc.trimEnd()}\n\n${section}\n`);
    }
    log(`wrote ${result.json}${QUICK ? '' : ' and bench/RESULTS.md'}`);
  }
}

main().catch((e) => {
  log(`bench failed: ${e.stack}`);
  process.exit(1);
});

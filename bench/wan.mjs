// `npm run bench -- wan`: longhaul against the link's limit and its peers over an emulated WAN.
// lh-netem (crates/longhaul-netem) joins two network namespaces with a user-space relay that
// delays, rate-limits and drops packets; the node writes to a tmpfs (the disk is not the
// question here), the sources are page-cached. Needs root (network namespaces, the tmpfs).
//
// Profiles: a = 1 Gbit/s, 50 ms RTT, 0.01% loss; b = 1 Gbit/s, 100 ms, 0.1% loss;
// c = 300 Mbit/s, 200 ms, no loss. Each under BBR (the namespaces' default) and under CUBIC
// (a preloaded shim, bench/cc-shim.c, gives every TCP socket CUBIC, as on a host whose default
// is CUBIC; a tool that chooses its own algorithm still can). The limit is iperf3 moving the
// same bytes from a cold start, the better of 1 and 8 streams. Runs are interleaved (run 1 of
// every tool, then run 2, ...); the first copy of each tool is checked with `diff -r`.
//
// `--check` validates the emulator instead: iperf3 with BBR against the set rate, one CUBIC
// stream on a lossy link against the Mathis estimate, and the TCP handshake time against the
// set RTT.
//
// `--before DIR` adds "longhaul (defaults) before": DIR's build (its dist/cli.js) as sender and
// as a second node beside this one, interleaved with it, for a before/after in one run.
//
//   node bench/wan.mjs [--quick] [--check [--checks bbr,loss,rtt]] [--runs N] [--profiles a,b,c] [--cc bbr,cubic]
//                      [--only BIG,LOSF,MIXED] [--tools a,b] [--before DIR] [--no-write]
//
// LH_WAN_BASELINE_CLI=OTHER/dist/cli.js adds "baseline longhaul --congestion cubic --streams auto":
// another build's sender against this build's node, interleaved with the rest (a before and after).
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { benchOptions, median } from './data.mjs';
import { readIntoCache, workloads } from './workloads.mjs';

const args = benchOptions(import.meta.filename, {
  quick: { type: 'boolean' },
  check: { type: 'boolean' },
  checks: { type: 'string', default: 'bbr,loss,rtt' },
  runs: { type: 'string' },
  profiles: { type: 'string', default: 'a,b,c' },
  cc: { type: 'string', default: 'bbr,cubic' },
  only: { type: 'string', default: 'BIG,LOSF,MIXED' },
  tools: { type: 'string', default: '' },
  'no-write': { type: 'boolean' },
  before: { type: 'string' },
});
const QUICK = Boolean(args.quick);
const RUNS = Number(args.runs ?? (QUICK ? 1 : 5));
const REPO = join(import.meta.dirname, '..');
const CLI = join(REPO, 'dist', 'cli.js');
const BEFORE_CLI = args.before ? join(args.before, 'dist', 'cli.js') : null;
const NETEM = join(REPO, 'target', 'release', 'lh-netem');
const SHIM = join(tmpdir(), 'lh-cc-shim.so');
const SRC = join(tmpdir(), `lh-wan-src${QUICK ? '-quick' : ''}`);
const DST = join(tmpdir(), 'lh-wan-dst');
const TOKEN = 'the wan bench token, shared by both ends';
const MiB = 2 ** 20;
const PORT = { longhaul: 7301, rsync: 7302, nc: 7303, iperf: 7304, gridftp: 7305, xrootd: 7306, before: 7307 };
const log = (...a) => console.error(...a);
const sh = (cmd) => spawnSync('bash', ['-c', cmd], { encoding: 'utf8' });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const PROFILES = {
  a: { rtt: '50ms', rate: '1gbit', loss: '0.01%', what: '1 Gbit/s, 50 ms RTT, 0.01% loss' },
  b: { rtt: '100ms', rate: '1gbit', loss: '0.1%', what: '1 Gbit/s, 100 ms RTT, 0.1% loss' },
  c: { rtt: '200ms', rate: '300mbit', loss: '0', what: '300 Mbit/s, 200 ms RTT, no loss' },
};

// ---- the link and the programs on its two sides ---------------------------------------------
function build() {
  if (spawnSync('cargo', ['build', '--release', '-q', '-p', 'longhaul-netem'], { cwd: REPO, stdio: 'inherit' }).status !== 0) throw new Error('building lh-netem failed');
  if (spawnSync('cc', ['-shared', '-fPIC', '-O2', '-o', SHIM, join(import.meta.dirname, 'cc-shim.c'), '-ldl'], { stdio: 'inherit' }).status !== 0)
    throw new Error('building bench/cc-shim.c failed');
  if (!existsSync(CLI)) throw new Error('build first: npm run build');
  if (BEFORE_CLI && !existsSync(BEFORE_CLI)) throw new Error(`build ${args.before} first: npm run build there`);
}

// Relays still running when the bench ends (an error): stopped, so their namespaces go too.
const relays = new Set();
process.on('exit', () => {
  for (const r of relays) r.kill('SIGTERM');
});

async function startLink(p, seed = 1) {
  const relay = spawn(NETEM, ['--rtt', p.rtt, '--rate', p.rate, '--loss', p.loss, '--seed', String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
  relays.add(relay);
  relay.once('exit', () => relays.delete(relay));
  let err = '';
  relay.stderr.on('data', (d) => (err += d));
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: relay.stdout }).once('line', resolve);
    relay.once('exit', (c) => reject(new Error(`lh-netem exited ${c}: ${err}`)));
  });
  const info = JSON.parse(line);
  return {
    ...info,
    async stop() {
      const gone = new Promise((r) => relay.once('exit', r));
      relay.kill('SIGTERM');
      await gone;
      return err.trim().split('\n').at(-1);
    },
  };
}

/** The environment of every program under congestion control `cc`. */
const ccEnv = (cc) => (cc === 'cubic' ? { LD_PRELOAD: SHIM, LH_DEFAULT_CC: 'cubic' } : {});

function inNs(ns, argv, env) {
  return spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LONGHAUL_TOKEN: TOKEN, ...env } });
}

/** Runs argv in namespace `ns` to its end; resolves to its wall time, or rejects with its stderr. */
function timedIn(ns, argv, env) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = inNs(ns, argv, env);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) reject(new Error(`${argv.join(' ')} exited ${code}: ${err.slice(-400)}`));
      else resolve({ wall, out });
    });
  });
}

async function server(ns, argv, env, ready) {
  const child = inNs(ns, argv, env);
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  await new Promise((resolve, reject) => {
    child.once('exit', (c) => reject(new Error(`${argv[0]} exited ${c}: ${err.slice(-400)}`)));
    if (ready) createInterface({ input: child.stdout }).on('line', (l) => ready(l) && resolve());
    else setTimeout(resolve, 800);
  });
  return child;
}

// ---- the tools ------------------------------------------------------------------------------
function bytesOf(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path, { recursive: true }).reduce((n, f) => {
    const s = statSync(join(path, String(f)));
    return s.isFile() ? n + s.size : n;
  }, 0);
}

function tools(link, cc) {
  const B = link.b.addr;
  const longhaul = (name, extra, cli = CLI, port = PORT.longhaul) => ({
    name,
    run: (src, dest) => timedIn(link.a.netns, [process.execPath, cli, 'send', src, `${B}:${port}/${dest}`, '-q', ...extra], ccEnv(cc)),
    landed: (src, dest) => join(DST, dest, src.split('/').at(-1)),
  });
  const iperf = (name, streams) => ({
    name,
    limit: true,
    async run(src) {
      const srv = inNs(link.b.netns, ['iperf3', '-s', '-1', '-B', B, '-p', String(PORT.iperf)], ccEnv(cc));
      await sleep(300);
      const r = await timedIn(link.a.netns, ['iperf3', '-c', B, '-p', String(PORT.iperf), '-n', String(bytesOf(src)), '-P', String(streams)], ccEnv(cc));
      await new Promise((res) => (srv.exitCode === null ? srv.once('exit', res) : res()));
      return r;
    },
  });
  const isDir = (src) => statSync(src).isDirectory();
  // Both copy a directory's contents into the URL's directory, a file by its name.
  const landed = (src, dest) => (isDir(src) ? join(DST, dest) : join(DST, dest, src.split('/').at(-1)));
  const gridftp = (name, flags, only, once = false) => ({
    name,
    only,
    once,
    server: 'gridftp',
    run: (src, dest) =>
      timedIn(link.a.netns, ['globus-url-copy', ...flags, `file://${src}${isDir(src) ? '/' : ''}`, `ftp://${B}:${PORT.gridftp}${join(DST, dest)}/`], ccEnv(cc)),
    landed,
  });
  const xrdcp = (name, flags, only, once = false) => ({
    name,
    only,
    once,
    server: 'xrootd',
    run: (src, dest) => timedIn(link.a.netns, ['xrdcp', '-s', '-f', ...flags, isDir(src) ? `${src}/` : src, `root://${B}:${PORT.xrootd}/${join(DST, dest)}/`], ccEnv(cc)),
    // xrdcp -r copies a directory by its name.
    landed: (src, dest) => join(DST, dest, src.split('/').at(-1)),
  });
  return [
    iperf('iperf3 -P 1', 1),
    iperf('iperf3 -P 8', 8),
    longhaul('longhaul (defaults)', []),
    ...(BEFORE_CLI ? [{ ...longhaul('longhaul (defaults) before', [], BEFORE_CLI, PORT.before), server: 'before' }] : []),
    longhaul('longhaul --streams 1', ['--streams', '1']),
    longhaul('longhaul --streams 2', ['--streams', '2']),
    longhaul('longhaul --streams 8', ['--streams', '8']),
    ...(cc === 'cubic' ? [longhaul('longhaul --congestion system', ['--congestion', 'system'])] : []),
    // The stream tuner alone (issue 31): CUBIC forced, streams auto (the default) against 2 fixed.
    ...(cc === 'cubic'
      ? [
          longhaul('longhaul --congestion cubic', ['--congestion', 'cubic']),
          longhaul('longhaul --congestion cubic --streams 2', ['--congestion', 'cubic', '--streams', '2']),
          longhaul('longhaul --congestion cubic --streams auto', ['--congestion', 'cubic', '--streams', 'auto']),
          // Another build's sender against this one's node (LH_WAN_BASELINE_CLI: its dist/cli.js),
          // for a before-and-after in one interleaved run.
          ...(process.env.LH_WAN_BASELINE_CLI
            ? [longhaul('baseline longhaul --congestion cubic --streams auto', ['--congestion', 'cubic', '--streams', 'auto'], process.env.LH_WAN_BASELINE_CLI)]
            : []),
        ]
      : []),
    // GridFTP and XRootD, as their users run them on long links: parallel streams for one big
    // file, concurrent files (and GridFTP's pipelining) for many. A run of GridFTP on 20,000
    // small files takes minutes: the slow ones run once (`once`), the others every round.
    ...['-p 1', '-p 8 -fast'].map((f) => gridftp(`GridFTP ${f}`, f.split(' '), ['BIG'])),
    gridftp('GridFTP -r -cc 8 -pp -fast', ['-r', '-cc', '8', '-pp', '-fast'], ['LOSF', 'MIXED'], true),
    xrdcp('xrdcp', [], ['BIG']),
    xrdcp('xrdcp -S 8', ['-S', '8'], ['BIG']),
    xrdcp('xrdcp -r --parallel 8', ['-r', '--parallel', '8'], ['LOSF', 'MIXED'], true),
    {
      name: 'rsync daemon -a -W',
      run: (src, dest) =>
        timedIn(link.a.netns, ['rsync', '-a', '-W', statSync(src).isDirectory() ? `${src}/` : src, `rsync://${B}:${PORT.rsync}/bench/${dest}/`], ccEnv(cc)),
      landed: (src, dest) => (statSync(src).isDirectory() ? join(DST, dest) : join(DST, dest, src.split('/').at(-1))),
    },
    {
      name: 'tar | nc',
      async run(src, dest) {
        const [dir, what] = statSync(src).isDirectory() ? [src, '.'] : [join(src, '..'), src.split('/').at(-1)];
        mkdirSync(join(DST, dest), { recursive: true });
        const recv = timedIn(link.b.netns, ['bash', '-c', `nc -l ${B} ${PORT.nc} | tar -xf - -C ${join(DST, dest)}`], ccEnv(cc));
        await sleep(300);
        const t0 = process.hrtime.bigint();
        await timedIn(link.a.netns, ['bash', '-c', `tar -cf - -C ${dir} ${what} | nc -N ${B} ${PORT.nc}`], ccEnv(cc));
        await recv;
        return { wall: Number(process.hrtime.bigint() - t0) / 1e9 };
      },
      landed: (src, dest) => (statSync(src).isDirectory() ? join(DST, dest) : join(DST, dest, src.split('/').at(-1))),
    },
  ].filter((t) => !args.tools || args.tools.split(',').some((x) => t.name.toLowerCase().includes(x.toLowerCase())));
}

// ---- the workloads ----------------------------------------------------------------------------
function makeWorkloads() {
  const base = workloads(true);
  const all = {
    BIG: { what: QUICK ? 'one 64 MiB random file' : 'one 1 GiB random file', size: QUICK ? 64 * MiB : 1024 * MiB },
    LOSF: { what: QUICK ? '2,000 files of 4 KiB' : '20,000 files of 4 KiB in 200 directories', files: QUICK ? 2000 : 20000 },
    MIXED: { what: base.MIXED.what },
  };
  const out = {};
  for (const name of args.only.split(',')) {
    const dir = join(SRC, name);
    const path = name === 'BIG' ? join(dir, 'big.bin') : name === 'LOSF' ? join(dir, 'losf') : join(dir, 'mixed');
    if (!existsSync(join(dir, '.done'))) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      log(`making ${name} in ${dir}`);
      if (name === 'BIG') sh(`head -c ${all.BIG.size} /dev/urandom > ${path}`);
      else if (name === 'LOSF') {
        for (let d = 0; d < all.LOSF.files / 100; d++) {
          mkdirSync(join(path, `d${d}`), { recursive: true });
          sh(`cd ${join(path, `d${d}`)} && for i in $(seq 0 99); do head -c 4096 /dev/urandom > f$i; done`);
        }
      } else base.MIXED.make(dir);
      writeFileSync(join(dir, '.done'), '');
    }
    readIntoCache(path);
    out[name] = { ...all[name], path };
  }
  return out;
}

// ---- one profile ------------------------------------------------------------------------------
async function runProfile(key, cc, loads) {
  const p = PROFILES[key];
  const link = await startLink(p);
  const results = {};
  const servers = [];
  try {
    const env = ccEnv(cc);
    servers.push(
      await server(link.b.netns, [process.execPath, CLI, 'serve', '--root', DST, '--listen', `${link.b.addr}:${PORT.longhaul}`, '--json'], env, (l) =>
        l.includes('"port"'),
      ),
    );
    const rsyncd = join(tmpdir(), 'lh-wan-rsyncd.conf');
    writeFileSync(rsyncd, `use chroot = no\n[bench]\n  path = ${DST}\n  read only = no\n  uid = root\n  gid = root\n`);
    servers.push(await server(link.b.netns, ['rsync', '--daemon', '--no-detach', `--config=${rsyncd}`, `--port=${PORT.rsync}`, `--address=${link.b.addr}`], env));
    const wanted = new Set(tools(link, cc).map((t) => t.server));
    if (wanted.has('before')) {
      const argv = [process.execPath, BEFORE_CLI, 'serve', '--root', DST, '--listen', `${link.b.addr}:${PORT.before}`, '--json'];
      servers.push(await server(link.b.netns, argv, env, (l) => l.includes('"port"')));
    }
    if (wanted.has('gridftp')) {
      // GridFTP resolves its own host name: each namespace names this host at its own address.
      for (const side of [link.a, link.b]) {
        mkdirSync(`/etc/netns/${side.netns}`, { recursive: true });
        writeFileSync(`/etc/netns/${side.netns}/hosts`, `127.0.0.1 localhost\n${side.addr} ${hostname()}\n`);
      }
      const argv = ['globus-gridftp-server', '-aa', '-anonymous-user', 'nobody', '-anonymous-group', 'nogroup', '-p', String(PORT.gridftp)];
      servers.push(await server(link.b.netns, [...argv, '-control-interface', link.b.addr, '-data-interface', link.b.addr, '-d', 'error'], env));
    }
    if (wanted.has('xrootd')) {
      // xrootd will not run as root: as nobody, in the node's namespace.
      const cfg = join(tmpdir(), 'lh-wan-xrootd.cfg');
      const logs = join(tmpdir(), 'lh-wan-xrootd-log');
      mkdirSync(logs, { recursive: true, mode: 0o777 });
      chmodSync(logs, 0o777);
      writeFileSync(cfg, `all.export ${DST}\nxrd.port ${PORT.xrootd}\n`);
      servers.push(await server(link.b.netns, ['setpriv', '--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups', 'xrootd', '-c', cfg, '-l', join(logs, 'xrootd.log')], env));
    }
    for (const [name, w] of Object.entries(loads)) {
      const ts = tools(link, cc).filter((t) => !t.only || t.only.includes(name));
      const times = Object.fromEntries(ts.map((t) => [t.name, []]));
      const busy = Object.fromEntries(ts.map((t) => [t.name, []]));
      for (let run = 0; run < RUNS; run++) {
        for (const t of ts) {
          if (t.once && run > 0) continue;
          const dest = `r-${key}-${cc}-${name}-${run}-${t.name.replace(/[^a-z0-9]+/gi, '_')}`;
          mkdirSync(join(DST, dest), { recursive: true });
          // GridFTP and xrootd write as nobody.
          chmodSync(join(DST, dest), 0o777);
          const before = cpuTicks();
          const tunBefore = tunDrops(link.a.netns);
          const r = await t.run(w.path, dest);
          const after = cpuTicks();
          times[t.name].push(r.wall);
          busy[t.name].push((after.busy - before.busy) / Math.max(1, after.total - before.total));
          if (run === 0 && t.landed) {
            const d = sh(`diff -r ${w.path} ${t.landed(w.path, dest)} > /dev/null && echo same`);
            if (!d.stdout.includes('same')) throw new Error(`${t.name}: the copy differs from ${w.path}`);
          }
          rmSync(join(DST, dest), { recursive: true, force: true });
          log(`${key}/${cc}/${name} run ${run + 1}: ${t.name} ${r.wall.toFixed(2)} s, ${tunDrops(link.a.netns) - tunBefore} packets dropped before the relay`);
        }
      }
      results[name] = { what: w.what, bytes: bytesOf(w.path), times, busy };
    }
  } finally {
    for (const s of servers) s.kill('SIGKILL');
    for (const side of [link.a, link.b]) rmSync(`/etc/netns/${side.netns}`, { recursive: true, force: true });
    log(`link counters: ${await link.stop()}`);
  }
  return { profile: p.what, cc, results };
}

function table({ profile, cc, results }) {
  const lines = [];
  for (const [name, r] of Object.entries(results)) {
    const med = Object.fromEntries(Object.entries(r.times).map(([k, v]) => [k, median(v)]));
    const limits = Object.keys(med).filter((k) => k.startsWith('iperf3'));
    const limit = limits.length ? Math.min(...limits.map((k) => med[k])) : NaN;
    lines.push(`#### ${profile}, ${cc.toUpperCase()}: ${name} (${r.what}, ${(r.bytes / MiB).toFixed(0)} MiB)`, '');
    lines.push('| tool | seconds, median (min–max) | MiB/s | x the limit | both CPUs busy |', '| --- | --- | ---: | ---: | ---: |');
    for (const [tool, v] of Object.entries(r.times)) {
      const m = med[tool];
      const cpu = r.busy?.[tool]?.length ? `${(100 * median(r.busy[tool])).toFixed(0)}%` : '';
      lines.push(`| ${tool.startsWith('longhaul') ? `**${tool}**` : tool} | ${m.toFixed(2)} (${Math.min(...v).toFixed(2)}–${Math.max(...v).toFixed(2)}) | ${(r.bytes / MiB / m).toFixed(0)} | ${(limit / m).toFixed(2)} | ${cpu} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** The machine's CPU time so far, in ticks, from /proc/stat: all of it, and all but idle and
 * iowait. Over a run, busy / total is how much of both CPUs the relay, the two ends and their
 * kernels used: near 100%, the run was CPU-bound here, whatever the link allowed. */
function cpuTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { total, busy: total - f[3] - f[4] };
}

/** Packets the sender's side of the link dropped before the relay read them (the TUN device's
 * queue, 500 packets, full when the relay falls behind: it shares the machine's CPUs with both
 * ends). TCP loses them as it loses the relay's own queue's drops, but they are no part of the
 * emulated link: a run with many of them measured the rig as well as the tool. */
function tunDrops(ns) {
  const out = sh(`ip netns exec ${ns} ip -s link`).stdout.split('\n');
  return out.reduce((n, l, i) => (l.trim().startsWith('TX:') ? n + Number(out[i + 1]?.trim().split(/\s+/)[3] ?? 0) : n), 0);
}

// ---- the emulator's own check ------------------------------------------------------------------
async function check() {
  const out = [];
  const iperfJson = async (link, extra, env) => {
    const srv = inNs(link.b.netns, ['iperf3', '-s', '-1', '-B', link.b.addr, '-p', String(PORT.iperf)], env);
    await sleep(300);
    const r = await timedIn(link.a.netns, ['iperf3', '-c', link.b.addr, '-p', String(PORT.iperf), '-J', ...extra], env);
    await new Promise((res) => (srv.exitCode === null ? srv.once('exit', res) : res()));
    return JSON.parse(r.out).end;
  };
  const checks = new Set(args.checks.split(','));
  // 1. BBR fills the link: the set rate, after its start-up.
  for (const p of checks.has('bbr') ? [{ rtt: '50ms', rate: '1gbit', loss: '0' }, { rtt: '100ms', rate: '300mbit', loss: '0' }] : []) {
    const link = await startLink(p);
    const e = await iperfJson(link, ['-t', '15', '-O', '3'], {});
    await link.stop();
    const bps = e.sum_received.bits_per_second;
    const set = p.rate === '1gbit' ? 1e9 : 300e6;
    out.push(`| BBR, 1 stream, ${p.rate}, ${p.rtt} | ${(bps / 1e6).toFixed(0)} Mbit/s | ${(bps / set).toFixed(2)}x the set rate | ≥ 0.9x |`);
  }
  // 2. One stream on a lossy path against Mathis, MSS/RTT * 1.22/sqrt(p): a model of Reno, so
  // Reno is the check of the link's loss; CUBIC, which grows its window by the clock rather
  // than per round trip, is shown beside it against RFC 8312's own average, and the relay's
  // counters give the loss rate as it happened. The first 10 s (slow start and its first
  // losses) are left out of the average, as the models describe the steady state.
  if (checks.has('loss')) {
    const p = { rtt: '100ms', rate: '1gbit', loss: '0.1%' };
    const mss = 1448;
    const rtt = 0.1;
    const mathis = ((mss * 8) / rtt) * (1.22 / Math.sqrt(0.001));
    // RFC 8312 section 5.1: W = (C * (3 + beta) / (4 * (1 - beta)))^(1/4) * (RTT / p)^(3/4), C 0.4, beta 0.7.
    const cubicModel = ((mss * 8) / rtt) * ((0.4 * 3.7) / (4 * 0.3)) ** 0.25 * (rtt / 0.001) ** 0.75;
    for (const cc of ['reno', 'cubic']) {
      const link = await startLink(p);
      const e = await iperfJson(link, ['-t', '40', '-O', '10', '-C', cc], {});
      const counters = JSON.parse((await link.stop()) ?? '{}');
      const lost = counters.aToB ? `${((100 * counters.aToB.lost) / counters.aToB.packets).toFixed(3)}% lost` : 'loss not read';
      const bps = e.sum_received.bits_per_second;
      const model = cc === 'reno' ? `Mathis (${(mathis / 1e6).toFixed(1)} Mbit/s)` : `Mathis; ${(bps / cubicModel).toFixed(2)}x RFC 8312's CUBIC (${(cubicModel / 1e6).toFixed(1)} Mbit/s)`;
      out.push(`| ${cc === 'reno' ? 'Reno' : 'CUBIC'}, 1 stream, 1 Gbit/s, 100 ms, 0.1% loss (${lost}) | ${(bps / 1e6).toFixed(1)} Mbit/s | ${(bps / mathis).toFixed(2)}x ${model} | within 2x |`);
    }
  }
  // 3. The round trip: a TCP handshake takes one.
  for (const rtt of checks.has('rtt') ? [30, 100, 200] : []) {
    const link = await startLink({ rtt: `${rtt}ms`, rate: '0', loss: '0' });
    const srv = inNs(link.b.netns, ['nc', '-lk', link.b.addr, String(PORT.iperf)], {});
    await sleep(300);
    const probe = `import socket,time\nts=[]\nfor i in range(10):\n  s=socket.socket();t=time.perf_counter();s.connect(('${link.b.addr}',${PORT.iperf}));ts.append(time.perf_counter()-t);s.close()\nts.sort();print(ts[len(ts)//2])`;
    const r = await timedIn(link.a.netns, ['python3', '-c', probe], {});
    srv.kill('SIGKILL');
    await link.stop();
    const got = Number(r.out.trim()) * 1000;
    out.push(`| TCP handshake, RTT set to ${rtt} ms | ${got.toFixed(1)} ms | ${(got / rtt).toFixed(3)}x the set RTT | 1x |`);
  }
  return ['| check | measured | ratio | target |', '| --- | ---: | ---: | --- |', ...out].join('\n');
}

// ---- main -----------------------------------------------------------------------------------
if (process.getuid?.() !== 0) throw new Error('the WAN bench needs root: network namespaces and a tmpfs');
build();
const command = `node bench/wan.mjs ${process.argv.slice(2).join(' ')}`.trim();
const host = sh("uname -r; nproc; grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").stdout.trim().split('\n');
const header = `${new Date().toISOString().slice(0, 10)}, \`${command}\`; ${host[1]} vCPUs (${host[2]?.trim()}), Linux ${host[0]}; iperf3 ${sh('iperf3 --version').stdout.split(' ')[1]}, rsync ${sh('rsync --version').stdout.split('\n')[0].split(/\s+/)[2]}, lh-netem relay.`;
if (args.check) {
  console.log(`${header}\n\n${await check()}`);
} else {
  mkdirSync(DST, { recursive: true });
  if (!sh(`mountpoint -q ${DST} && echo yes`).stdout.includes('yes')) sh(`mount -t tmpfs -o size=8g tmpfs ${DST}`);
  const loads = makeWorkloads();
  const all = [];
  for (const key of args.profiles.split(',')) {
    for (const cc of args.cc.split(',')) {
      const r = await runProfile(key, cc, loads);
      all.push(r);
      console.log(table(r));
    }
  }
  sh(`umount ${DST}`);
  if (!args['no-write']) {
    mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
    // Named by what ran, so that runs of other profiles on the same day do not overwrite it.
    const what = `${args.profiles.replace(/,/g, '')}-${args.cc.replace(/,/g, '+')}`;
    const file = join(import.meta.dirname, 'results', `${new Date().toISOString().slice(0, 10)}-wan${QUICK ? '-quick' : ''}-${what}.json`);
    writeFileSync(file, `${JSON.stringify({ header, runs: RUNS, all }, null, 1)}\n`);
    log(`wrote ${file}`);
  }
  console.log(`\n${header}`);
}

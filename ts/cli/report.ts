// `--report out.html`: one self-contained page (no script or style from the network) with the
// throughput over time, the bytes per stream and the thread-state timeline drawn as SVG, in the
// manner of Vyukov's profiles of his parallel I/O engine, plus the summary, the placement and
// the fast paths with the reason each one fell back, and the node's side of the run.
// Hand-made SVG rather than a charting library: a few charts of at most 400 points need none,
// and each point's exact value rides in a <title> (a native tooltip, also shown by the small
// inline script at once), so the page has nothing to bundle, vet or keep up to date.
import { writeFileSync } from 'node:fs';

import type { Progress } from '../sdk/common.js';
import * as fmt from './format.js';
import type { NetSample, ReceiverDisk, SendSummary, TimelineSample } from '../sdk/index.js';
import { verifiedLine } from './progress.js';

export interface ProgressSample {
  seconds: number;
  /** Bytes that travelled so far: resumed bytes are no throughput. */
  bytesMoved: number;
  filesDone: number;
}

/** Keeps the progress events of a transfer, at most `limit` of them (halved, evenly, when full). */
export class ProgressRecorder {
  private list: ProgressSample[] = [{ seconds: 0, bytesMoved: 0, filesDone: 0 }];
  constructor(private readonly limit = 4096) {}

  add(p: Progress): void {
    this.list.push({ seconds: p.seconds, bytesMoved: p.bytesMoved, filesDone: p.filesDone });
    if (this.list.length >= this.limit) this.list = this.list.filter((_, i) => i % 2 === 0 || i === this.list.length - 1);
  }

  samples(): ProgressSample[] {
    return this.list;
  }
}

export interface ReportInput {
  summary: SendSummary;
  source: string;
  target: string;
  progress: ProgressSample[];
  command?: string;
}

const W = 760;
const H = 220;
const PAD = { l: 64, r: 16, t: 14, b: 34 };
// Busy states, then blocked by what it waits for (the engine's `Wait`), in stacking order.
const STATES = [
  ['reading', '#4e79a7', 'reading'],
  ['processing', '#f28e2b', 'processing'],
  ['sending', '#59a14f', 'sending'],
  ['writing', '#76b7b2', 'writing'],
  ['blockedPool', '#e15759', 'blocked: pool empty (no free buffer)'],
  ['blockedQueue', '#ff9da7', 'blocked: queue full'],
  ['blockedSocket', '#9c755f', 'blocked: socket (the network)'],
  ['blockedRate', '#edc948', 'blocked: rate limit'],
  ['blockedInput', '#bab0ac', 'blocked: waiting for disk reads'],
] as const;
type StateKey = (typeof STATES)[number][0];

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const num = (n: number): string => (Math.round(n * 10) / 10).toString();

/** Round axis steps: 1, 2 or 5 times a power of ten, about `n` of them. */
function ticks(max: number, n = 5): number[] {
  if (!(max > 0)) return [0];
  const raw = max / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v <= max * 1.0001; v += step) out.push(v);
  return out;
}

interface Axes {
  xMax: number;
  yMax: number;
  xLabel: string;
  yLabel: string;
  /** Named positions on the x axis instead of numeric ticks (a bar chart's categories). */
  xNames?: [number, string][];
}

/** Hover columns: one transparent strip per point, across the plot's height, whose <title> is the
 * exact values at that moment (`x0..x1` in chart units). */
function hoverStrips(a: Axes, cols: { x0: number; x1: number; text: string }[]): string {
  const { x } = scaler(a);
  return cols
    .map(
      (c) =>
        `<rect class="hover" x="${num(x(c.x0))}" y="${PAD.t}" width="${num(Math.max(x(c.x1) - x(c.x0), 1))}" height="${H - PAD.t - PAD.b}" fill="transparent"><title>${esc(c.text)}</title></rect>`,
    )
    .join('');
}

/** Columns around each point: from halfway to the previous one to halfway to the next. */
function columnsAround(xs: number[], xMax: number): { x0: number; x1: number }[] {
  return xs.map((v, i) => {
    const prev = xs[i - 1];
    const next = xs[i + 1];
    return {
      x0: prev === undefined ? (next === undefined ? 0 : Math.max(0, v - (next - v) / 2)) : (prev + v) / 2,
      x1: next === undefined ? (prev === undefined ? xMax : Math.min(xMax, v + (v - prev) / 2)) : (v + next) / 2,
    };
  });
}

function frame(a: Axes, body: string, chart: string, title: string, legend = '', points?: number): string {
  const { x, y } = scaler(a);
  const grid = ticks(a.yMax)
    .map(
      (v) =>
        `<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${num(y(v))}" y2="${num(y(v))}" class="grid"/><text x="${PAD.l - 6}" y="${num(y(v) + 4)}" text-anchor="end">${String(v)}</text>`,
    )
    .join('');
  const xt = (a.xNames ?? ticks(a.xMax, 8).map((v) => [v, num(v)] as [number, string]))
    .map(([v, label]) => `<text class="xtick" x="${num(x(v))}" y="${H - PAD.b + 16}" text-anchor="middle">${esc(label)}</text>`)
    .join('');
  return `<section><h2>${esc(title)}</h2>${legend}<svg class="chart" data-chart="${chart}"${points === undefined ? '' : ` data-points="${points}"`} viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">
${grid}${xt}<line x1="${PAD.l}" x2="${PAD.l}" y1="${PAD.t}" y2="${H - PAD.b}" class="axis"/><line x1="${PAD.l}" x2="${W - PAD.r}" y1="${H - PAD.b}" y2="${H - PAD.b}" class="axis"/>
<text x="${(PAD.l + W - PAD.r) / 2}" y="${H - 4}" text-anchor="middle">${esc(a.xLabel)}</text><text transform="translate(12 ${(PAD.t + H - PAD.b) / 2}) rotate(-90)" text-anchor="middle">${esc(a.yLabel)}</text>
${body}</svg></section>`;
}

function scaler(a: Axes): { x: (v: number) => number; y: (v: number) => number } {
  return {
    x: (v) => PAD.l + (v / a.xMax) * (W - PAD.l - PAD.r),
    y: (v) => H - PAD.b - (v / a.yMax) * (H - PAD.t - PAD.b),
  };
}

/** Bytes per second between consecutive progress events, in MiB/s against seconds. */
export function throughputPoints(progress: ProgressSample[]): [number, number][] {
  const pts: [number, number][] = [];
  for (let i = 1; i < progress.length; i++) {
    const dt = progress[i]!.seconds - progress[i - 1]!.seconds;
    if (dt <= 0) continue;
    pts.push([progress[i]!.seconds, (progress[i]!.bytesMoved - progress[i - 1]!.bytesMoved) / dt / 2 ** 20]);
  }
  return pts;
}

function throughputChart(progress: ProgressSample[], summary: SendSummary): string {
  const pts = throughputPoints(progress);
  if (pts.length === 0)
    return `<section><h2>Throughput over time</h2><p class="empty">too short for a curve: ${esc(fmt.rate(summary.bytesPerSecond))} on average</p></section>`;
  const a: Axes = {
    xMax: Math.max(summary.seconds, pts[pts.length - 1]![0]),
    yMax: Math.max(...pts.map((p) => p[1])) * 1.1 || 1,
    xLabel: 'seconds',
    yLabel: 'MiB/s',
  };
  const { x, y } = scaler(a);
  const line = pts.map(([t, r], i) => `${i === 0 ? 'M' : 'L'}${num(x(t))},${num(y(r))}`).join('');
  const avg = summary.bytesPerSecond / 2 ** 20;
  const cols = columnsAround(
    pts.map((p) => p[0]),
    a.xMax,
  ).map((c, i) => ({
    ...c,
    text: `${pts[i]![0].toFixed(2)} s: ${pts[i]![1].toFixed(1)} MiB/s (${fmt.count(Math.round(pts[i]![1] * 2 ** 20))} bytes/s)`,
  }));
  const body = `<path class="series" d="${line}" fill="none" stroke="#4e79a7" stroke-width="1.5"/><line x1="${PAD.l}" x2="${W - PAD.r}" y1="${num(y(avg))}" y2="${num(y(avg))}" class="avg"/><text x="${W - PAD.r}" y="${num(y(avg) - 4)}" text-anchor="end">average ${esc(fmt.rate(summary.bytesPerSecond))}</text>${hoverStrips(a, cols)}`;
  return frame(a, body, 'throughput', 'Throughput over time', '', pts.length);
}

function streamsChart(summary: SendSummary): string {
  const bytes = summary.perStreamBytes;
  const max = Math.max(...bytes, 1);
  const unit = max >= 2 ** 30 ? 2 ** 30 : 2 ** 20;
  // Every stream named under its bar; past 16, every k-th, so the names do not overlap.
  const every = Math.ceil(bytes.length / 16);
  const a: Axes = {
    xMax: bytes.length,
    yMax: (max / unit) * 1.1,
    xLabel: 'data stream',
    yLabel: unit === 2 ** 30 ? 'GiB' : 'MiB',
    xNames: bytes.map((_, i) => [i + 0.5, `stream ${i}`] as [number, string]).filter((_, i) => i % every === 0),
  };
  const { x, y } = scaler(a);
  const bw = ((W - PAD.l - PAD.r) / Math.max(bytes.length, 1)) * 0.7;
  const body = bytes
    .map((b, i) => {
      const cx = x(i + 0.5);
      const top = y(b / unit);
      return `<rect class="series" x="${num(cx - bw / 2)}" y="${num(top)}" width="${num(bw)}" height="${num(H - PAD.b - top)}" fill="#59a14f"><title>stream ${i}: ${esc(fmt.bytes(b))} (${fmt.count(b)} bytes)</title></rect><text x="${num(cx)}" y="${num(top - 4)}" text-anchor="middle">${esc(fmt.bytes(b))}</text>`;
    })
    .join('');
  return frame(a, body, 'streams', 'Bytes per stream');
}

/** Averages the timeline into at most `n` buckets, so a long transfer draws in bounded size. */
export function bucketTimeline(samples: TimelineSample[], n = 400): TimelineSample[] {
  if (samples.length <= n) return samples;
  const out: TimelineSample[] = [];
  const per = samples.length / n;
  for (let b = 0; b < n; b++) {
    const part = samples.slice(Math.floor(b * per), Math.floor((b + 1) * per));
    if (part.length === 0) continue;
    const avg = (k: keyof TimelineSample): number => part.reduce((s, p) => s + (p[k] ?? 0), 0) / part.length;
    out.push({
      ms: avg('ms'),
      reading: avg('reading'),
      processing: avg('processing'),
      sending: avg('sending'),
      writing: avg('writing'),
      blocked: avg('blocked'),
      blockedPool: avg('blockedPool'),
      blockedQueue: avg('blockedQueue'),
      blockedSocket: avg('blockedSocket'),
      blockedRate: avg('blockedRate'),
      blockedInput: avg('blockedInput'),
      queued: avg('queued'),
    });
  }
  return out;
}

/** A sample's threads in state `k`; a timeline from an older engine has no `blocked*` split. */
const inState = (s: TimelineSample, k: StateKey): number => s[k] ?? 0;

/** Threads blocked for a reason the timeline did not record (an older engine's samples). */
function unsplit(s: TimelineSample): number {
  return Math.max(0, s.blocked - STATES.slice(4).reduce((sum, [k]) => sum + inState(s, k), 0));
}

function timelineCharts(summary: SendSummary): string {
  const tl = bucketTimeline(summary.timeline);
  if (tl.length < 2)
    return `<section><h2>Thread states</h2><p class="empty">no timeline samples (the transfer was shorter than one sample)</p></section>`;
  const xMax = tl[tl.length - 1]!.ms / 1000;
  const states: [string, string, string][] = STATES.map(([k, c, label]) => [k, c, label]);
  const value = (s: TimelineSample, k: string): number => (k === 'blockedOther' ? unsplit(s) : inState(s, k as StateKey));
  if (tl.some((s) => unsplit(s) > 0.01)) states.push(['blockedOther', '#e15759', 'blocked: reason not recorded']);
  const totals = tl.map((s) => states.reduce((sum, [k]) => sum + value(s, k), 0));
  const a: Axes = { xMax, yMax: Math.max(...totals, 1) * 1.1, xLabel: 'seconds', yLabel: 'threads' };
  const { x, y } = scaler(a);
  // Stacked areas: each state's band lies on the sum of those below it.
  const base = tl.map(() => 0);
  const bands = states
    .map(([k, colour, label]) => {
      const lower = [...base];
      tl.forEach((s, i) => (base[i]! += value(s, k)));
      const top = tl.map((s, i) => `${i === 0 ? 'M' : 'L'}${num(x(s.ms / 1000))},${num(y(base[i]!))}`).join('');
      const bottom = tl
        .map((s, i) => [s, i] as const)
        .reverse()
        .map(([s, i]) => `L${num(x(s.ms / 1000))},${num(y(lower[i]!))}`)
        .join('');
      return `<path class="series" data-state="${k}" d="${top}${bottom}Z" fill="${colour}" fill-opacity="0.85" stroke="none"><title>${esc(label)}</title></path>`;
    })
    .join('');
  const xs = tl.map((s) => s.ms / 1000);
  const two = (v: number): string => (Math.round(v * 100) / 100).toString();
  const cols = columnsAround(xs, xMax).map((c, i) => {
    const s = tl[i]!;
    const parts = states.map(([k, , label]) => [label, value(s, k)] as const).filter(([, v]) => v > 0);
    return {
      ...c,
      text: `${xs[i]!.toFixed(2)} s: ${parts.length ? parts.map(([l, v]) => `${l} ${two(v)}`).join(', ') : 'no thread busy or blocked'}`,
    };
  });
  const legend = `<p class="legend" id="states-legend">${states.map(([k, c, label]) => `<span data-state="${k}"><i style="background:${c}"></i>${esc(label)}</span>`).join('')}</p>`;
  const chart = frame(a, bands + hoverStrips(a, cols), 'threads', 'Thread states over time (threads in each state)', legend);

  const qa: Axes = { xMax, yMax: Math.max(...tl.map((s) => s.queued), 1) * 1.1, xLabel: 'seconds', yLabel: 'blocks' };
  const q = scaler(qa);
  const qline = tl.map((s, i) => `${i === 0 ? 'M' : 'L'}${num(q.x(s.ms / 1000))},${num(q.y(s.queued))}`).join('');
  const qcols = columnsAround(xs, xMax).map((c, i) => ({ ...c, text: `${xs[i]!.toFixed(2)} s: ${two(tl[i]!.queued)} blocks queued` }));
  const queued = frame(
    qa,
    `<path class="series" d="${qline}" fill="none" stroke="#b07aa1" stroke-width="1.5"/>${hoverStrips(qa, qcols)}`,
    'queued',
    'Blocks queued between stages',
  );
  return chart + queued;
}

const STREAM_COLOURS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

/** The network's figures drawn per stream, each from a sample (the last two from totals so far). */
const NET_SERIES: [chart: string, title: string, unit: string, value: (n: NetSample, prev?: NetSample) => number][] = [
  ['net-rtt', 'Round-trip time per stream', 'ms', (n) => n.rttUs / 1000],
  ['net-cwnd', 'Congestion window per stream', 'segments', (n) => n.cwnd],
  ['net-rate', 'Delivery rate per stream (what TCP measured)', 'MiB/s', (n) => n.deliveryRate / 2 ** 20],
  [
    'net-resent',
    'Segments resent per second, per stream (loss)',
    'segments/s',
    (n, prev) => (prev && n.ms > prev.ms ? Math.max(0, n.retransSegs - prev.retransSegs) / ((n.ms - prev.ms) / 1000) : 0),
  ],
];

/** Every stream's samples in time order, at most `n` moments of each (evenly kept). */
export function netSeries(samples: NetSample[], n = 400): NetSample[][] {
  const streams: NetSample[][] = [];
  for (const s of samples) (streams[s.stream] ??= []).push(s);
  return streams.map((list = []) =>
    list.length <= n ? list : Array.from({ length: n }, (_, i) => list[Math.floor((i * list.length) / n)]!),
  );
}

/**
 * TCP_INFO of each data stream over time (issue 31): RTT, congestion window, delivery rate and
 * resends, one line per stream, named in the legend, each moment's values in its tooltip.
 */
function networkCharts(summary: SendSummary): string {
  const streams = netSeries(summary.networkTimeline ?? []);
  const moments = Math.max(0, ...streams.map((l) => l.length));
  if (moments < 2)
    return `<section><h2>The network over time</h2><p class="empty">${
      summary.network.length
        ? 'no TCP samples over time (the transfer was shorter than one sample)'
        : 'no TCP figures (a TLS relay holds the data streams)'
    }</p></section>`;
  const colour = (i: number): string => STREAM_COLOURS[i % STREAM_COLOURS.length]!;
  const legend = `<p class="legend">${streams.map((_, i) => `<span data-stream="${i}"><i style="background:${colour(i)}"></i>stream ${i}</span>`).join('')}</p>`;
  const xMax = Math.max(summary.seconds, ...streams.map((l) => (l.at(-1)?.ms ?? 0) / 1000)) || 1;
  const longest = streams.reduce((a, b) => (b.length > a.length ? b : a));
  return NET_SERIES.map(([chart, title, unit, value], k) => {
    const values = streams.map((l) => l.map((n, i) => value(n, l[i - 1])));
    const a: Axes = { xMax, yMax: Math.max(...values.flat(), 0) * 1.1 || 1, xLabel: 'seconds', yLabel: unit };
    const { x, y } = scaler(a);
    const lines = streams
      .map(
        (l, i) =>
          `<path class="series" data-stream="${i}" d="${l.map((n, j) => `${j === 0 ? 'M' : 'L'}${num(x(n.ms / 1000))},${num(y(values[i]![j]!))}`).join('')}" fill="none" stroke="${colour(i)}" stroke-width="1.3"/>`,
      )
      .join('');
    const xs = longest.map((n) => n.ms / 1000);
    const two = (v: number): string => (Math.round(v * 100) / 100).toString();
    const cols = columnsAround(xs, xMax).map((c, j) => ({
      ...c,
      text: `${xs[j]!.toFixed(2)} s: ${streams
        .map((l, i) => (values[i]![j] === undefined ? undefined : `stream ${i} ${two(values[i]![j]!)} ${unit}`))
        .filter(Boolean)
        .join(', ')}`,
    }));
    return frame(a, lines + hoverStrips(a, cols), chart, title, k === 0 ? legend : '', longest.length);
  }).join('');
}

/** Thread-seconds in each state over the run: each sample's counts times the time to the next. */
export function threadSeconds(samples: TimelineSample[]): Record<StateKey | 'blockedOther', number> {
  const out = Object.fromEntries([...STATES.map(([k]) => [k, 0]), ['blockedOther', 0]]) as Record<StateKey | 'blockedOther', number>;
  for (let i = 0; i + 1 < samples.length; i++) {
    const s = samples[i]!;
    const dt = (samples[i + 1]!.ms - s.ms) / 1000;
    for (const [k] of STATES) out[k] += inState(s, k) * dt;
    out.blockedOther += unsplit(s) * dt;
  }
  return out;
}

/** Both ends side by side: where the sender's threads' time went (from its timeline) and the
 * node's (from its summary), as thread-seconds; or why the node's side is missing. */
function endsSection(summary: SendSummary): string {
  const sent = threadSeconds(summary.timeline);
  const senderRows: [string, number][] = [
    ...STATES.filter(([k]) => k !== 'writing').map(([k, , label]) => [label, sent[k]] as [string, number]),
    ...(sent.blockedOther > 0 ? ([['blocked: reason not recorded', sent.blockedOther]] as [string, number][]) : []),
  ];
  const r: ReceiverDisk | undefined = summary.receiver;
  const nodeRows: [string, number][] = r
    ? [
        ['writing (pwrite)', r.writeSeconds],
        ['fsync', r.fsyncSeconds],
        ['other writer work (create, rename, journal)', Math.max(0, r.writerBusySeconds - r.writeSeconds - r.fsyncSeconds)],
        ['writers idle: waiting for blocks (the network)', r.writerIdleSeconds],
        ['receivers blocked: write queue full (the disk)', r.queueFullSeconds],
        ['receivers blocked: pool empty', r.poolWaitSeconds],
        ['receivers blocked: rate limit', r.rateWaitSeconds],
      ]
    : [];
  const max = Math.max(...senderRows.map((x) => x[1]), ...nodeRows.map((x) => x[1]), 1e-6);
  const bars = (rows: [string, number][], side: string): string =>
    `<table class="bars" data-side="${side}">${rows
      .map(
        ([label, v]) =>
          `<tr title="${esc(`${label}: ${v.toFixed(3)} s`)}"><th>${esc(label)}</th><td class="v">${v.toFixed(3)} s</td><td><span class="bar" style="width:${num((v / max) * 220)}px"></span></td></tr>`,
      )
      .join('')}</table>`;
  const node = r
    ? `<p>${r.writers} disk writers wrote ${esc(fmt.bytes(r.bytesWritten))} (${fmt.count(r.bytesWritten)} bytes) in ${r.writeSeconds.toFixed(3)} s of pwrite and ${r.fsyncSeconds.toFixed(3)} s of fsync; busy ${r.writerBusySeconds.toFixed(3)} s, idle ${r.writerIdleSeconds.toFixed(3)} s (summed over the writers).</p>${bars(nodeRows, 'node')}`
    : '<p class="empty">receiver: not reported (the node is older than this report and does not send its disk figures)</p>';
  return `<section id="ends"><h2>Both ends: where the threads' time went (thread-seconds)</h2>
<div class="ends"><div><h3>Sender (this host)</h3>${bars(senderRows, 'sender')}</div><div id="receiver"><h3>Receiver (the node)</h3>${node}</div></div></section>`;
}

function table(rows: [string, string][]): string {
  return `<table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>`;
}

/** The whole page. */
export function renderReport(r: ReportInput): string {
  const s = r.summary;
  const summary = table([
    ['source', r.source],
    ['target', r.target],
    [
      'sent',
      `${fmt.bytes(s.bytes)} (${fmt.count(s.bytes)} bytes) in ${fmt.plural(s.files, 'file')}, ${fmt.plural(s.dirs, 'dir')}, ${fmt.plural(s.symlinks, 'symlink')}`,
    ],
    [
      'time',
      `${s.seconds.toFixed(3)} s (scan ${s.scanSeconds.toFixed(3)} s, first byte ${s.firstByteSeconds === undefined ? 'never: nothing to send' : `at ${s.firstByteSeconds.toFixed(3)} s`}, node ${s.receiverSeconds.toFixed(3)} s)`,
    ],
    ['throughput', `${fmt.rate(s.bytesPerSecond)}, ${fmt.count(Math.round(s.files / Math.max(s.seconds, 1e-9)))} files/s`],
    ['streams', `${s.streams}`],
    ['blocks', `${fmt.count(s.blocks)} (${fmt.count(s.packedBlocks)} packed with small files, ${fmt.count(s.sendfileBlocks)} by sendfile)`],
    ['scheduler', `${s.scheduler.used}${s.scheduler.requested === 'auto' ? ` (auto: ${s.scheduler.reason})` : ''}`],
    ['digest', s.digest || 'none'],
    ['verified', verifiedLine(s).replace(/^verified: /, '')],
    ...(r.command ? ([['command', `longhaul ${r.command}`]] as [string, string][]) : []),
  ]);
  const fast = table([
    [
      'sendfile',
      s.fastPaths.sendfile
        ? `on: ${fmt.count(s.sendfileBlocks)} blocks, ${fmt.bytes(s.sendfileBytes)}`
        : `off: ${s.fastPaths.sendfileFallback ?? 'unknown'}`,
    ],
    ['mlock', s.fastPaths.mlock ? 'on: the buffer pool is locked in memory' : `off: ${s.fastPaths.mlockFallback ?? 'unknown'}`],
    ['pinning', s.placement.pinned ? `on: ${s.placement.threads.length} threads pinned` : `off: ${s.placement.fallback ?? 'unknown'}`],
    ...s.skipped.slice(0, 5).map((k) => ['skipped', `${k.path}: ${k.reason}`] as [string, string]),
  ]);
  const placement = `${table([
    ['decision', s.placement.reason],
    ['disk CPUs', s.placement.diskCpus || '-'],
    ['network CPUs', s.placement.netCpus || '-'],
    ['other CPUs', s.placement.otherCpus || '-'],
  ])}${
    s.placement.threads.length
      ? `<table class="threads"><tr><th>thread</th><th>tid</th><th>cpu</th><th>note</th></tr>${s.placement.threads.map((t) => `<tr><td>${esc(t.name)}</td><td>${t.tid}</td><td>${t.cpu}</td><td>${esc(t.error ?? '')}</td></tr>`).join('')}</table>`
      : ''
  }`;
  const ms = (us: number): string => (us / 1000).toFixed(1);
  const network = s.network.length
    ? `<table class="network"><tr><th>stream</th><th>RTT ms (min)</th><th>cwnd</th><th>resent</th><th>delivery</th><th>busy s</th><th>receiver-window-limited</th><th>send-buffer-limited</th></tr>${s.network
        .map(
          (n, i) =>
            `<tr><td>${i}</td><td>${ms(n.rttUs)} (${ms(n.minRttUs)})</td><td>${n.cwnd}</td><td>${esc(fmt.bytes(n.bytesRetrans))} (${n.retransSegs} segs)</td><td>${esc(fmt.rate(n.deliveryRate))}</td><td>${(n.busyUs / 1e6).toFixed(2)}</td><td>${((n.rwndLimitedUs / Math.max(n.busyUs, 1)) * 100).toFixed(0)}%</td><td>${((n.sndbufLimitedUs / Math.max(n.busyUs, 1)) * 100).toFixed(0)}%</td></tr>`,
        )
        .join('')}</table>`
    : '<p class="empty">no TCP figures (a TLS relay holds the data streams)</p>';
  const probes = s.scheduler.probe.length
    ? table(s.scheduler.probe.map((p) => [`probe ${p.scheduler}`, fmt.rate(p.bytesPerSecond)] as [string, string]))
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>longhaul report: ${esc(fmt.bytes(s.bytes))} at ${esc(fmt.rate(s.bytesPerSecond))}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:800px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin:24px 0 6px}
table{border-collapse:collapse;margin:6px 0}th,td{text-align:left;padding:2px 10px 2px 0;vertical-align:top}th{font-weight:600;color:#555}
svg text{font-size:11px;fill:#444}.grid{stroke:#e4e4e4}.axis{stroke:#888}.avg{stroke:#e15759;stroke-dasharray:4 3}
.legend span{margin-right:14px;white-space:nowrap}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}.empty{color:#888}
h3{font-size:14px;margin:10px 0 4px}.ends{display:flex;gap:24px;flex-wrap:wrap}.bars th{font-weight:400;max-width:230px}.bars .v{text-align:right;white-space:nowrap}
.bar{display:inline-block;height:10px;background:#4e79a7}.hover:hover{fill:rgba(0,0,0,0.06)}
#tip{position:fixed;display:none;pointer-events:none;background:#222;color:#fff;font-size:12px;padding:3px 6px;border-radius:3px;max-width:420px}
</style></head>
<body>
<div id="tip" role="tooltip"></div>
<h1>longhaul: ${esc(fmt.bytes(s.bytes))} in ${esc(fmt.plural(s.files, 'file'))} at ${esc(fmt.rate(s.bytesPerSecond))}</h1>
<h2>Summary</h2>${summary}
${throughputChart(r.progress, s)}
${streamsChart(s)}
${timelineCharts(s)}
${endsSection(s)}
<h2>Fast paths and fallbacks</h2>${fast}
<h2>Placement</h2>${placement}
${probes ? `<h2>Scheduler probes</h2>${probes}` : ''}
<h2>Network (TCP_INFO of each data stream)</h2>${network}
${networkCharts(s)}
<h2>What limited the run</h2><p id="verdict"><b>${esc(s.verdict.limit)}</b>: ${esc(s.verdict.evidence)}</p>
<script>
// Records what the browser drew (chart, drawn series, their size), for the report's own test.
document.body.dataset.rendered = JSON.stringify([...document.querySelectorAll('svg[data-chart]')].map(function (svg) {
  // A filled shape (a bar, a band) counts when it has an area; a line when it has a length.
  var parts = [...svg.querySelectorAll('.series')].map(function (p) {
    var b = p.getBBox();
    return p.getAttribute('fill') === 'none' ? b.width > 0 || b.height > 0 : b.width > 0 && b.height > 0;
  });
  return { chart: svg.dataset.chart, series: parts.length, drawn: parts.filter(Boolean).length };
}));
// Tooltips: each <title> (the exact values; a native tooltip without script) becomes data-tip,
// shown at once beside the pointer.
var tip = document.getElementById('tip');
document.querySelectorAll('svg title, .bars tr[title]').forEach(function (t) {
  var el = t.tagName === 'title' ? t.parentNode : t;
  el.dataset.tip = t.tagName === 'title' ? t.textContent : t.getAttribute('title');
  if (t.tagName === 'title') t.remove(); else t.removeAttribute('title');
});
function show(e) {
  var el = e.target.closest('[data-tip]');
  if (!el) { tip.style.display = 'none'; return; }
  tip.textContent = el.dataset.tip;
  tip.style.display = 'block';
  tip.style.left = Math.min(e.clientX + 12, innerWidth - tip.offsetWidth - 4) + 'px';
  tip.style.top = e.clientY + 14 + 'px';
}
document.addEventListener('mousemove', show);
document.addEventListener('mouseover', show);
// Records what hovering the middle of each chart shows, for the report's own test.
document.body.dataset.tips = JSON.stringify(Object.fromEntries([...document.querySelectorAll('svg[data-chart]')].map(function (svg) {
  var cols = svg.querySelectorAll('[data-tip]');
  var el = cols[Math.floor(cols.length / 2)];
  if (!el) return [svg.dataset.chart, ''];
  var r = el.getBoundingClientRect();
  el.dispatchEvent(new MouseEvent('mouseover', { bubbles: true, clientX: r.x + r.width / 2, clientY: r.y + r.height / 2 }));
  return [svg.dataset.chart, tip.textContent];
})));
tip.style.display = 'none';
</script>
</body></html>
`;
}

export function writeReport(path: string, r: ReportInput): void {
  writeFileSync(path, renderReport(r));
}

// `longhaul send --report out.html`: a self-contained page whose SVG charts (throughput, bytes
// per stream, thread states, queued blocks) a real browser draws with non-empty shapes.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { serve, type StorageNode } from '../dist/sdk/index.js';
import { freshDir, randomFile, smallTree } from './helpers.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');
const CHROMIUM = '/usr/bin/chromium';
let work: string;
let node: StorageNode;

beforeAll(async () => {
  work = freshDir('report');
  mkdirSync(join(work, 'src', 'small'), { recursive: true });
  randomFile(join(work, 'src', 'big.bin'), 192 << 20);
  smallTree(join(work, 'src', 'small'), 400);
  // A rate limit stretches the transfer to ~2 s, so the charts have a course to draw.
  node = await serve({ root: join(work, 'root'), auth: false, rate: '96M' });
});

afterAll(async () => {
  await node?.close();
});

function sendWithReport(
  report: string,
  extra: string[] = ['--json'],
  dest = 'r',
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [CLI, 'send', join(work, 'src'), `${node.url}/${dest}`, '--report', report, '--streams', '3', ...extra],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** The DOM headless Chromium ends with, after the page's own script ran. */
function dumpDom(file: string): string {
  expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: npm test installs it (scripts/ensure-test-tools.mjs)`).toBe(true);
  const r = spawnSync(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${freshDir('chromium')}`,
      '--window-size=840,2000',
      `--screenshot=${join(work, 'report.png')}`,
      '--dump-dom',
      `file://${file}`,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

const unquote = (s: string): string =>
  s
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>');

/** What headless Chromium drew: the page's own script records each chart's shapes and their sizes. */
function rendered(file: string): { chart: string; series: number; drawn: number }[] {
  const m = /data-rendered="([^"]*)"/.exec(dumpDom(file));
  expect(m, 'the page did not record what it drew').not.toBeNull();
  return JSON.parse(m![1]!.replace(/&quot;/g, '"')) as { chart: string; series: number; drawn: number }[];
}

describe('send --report', () => {
  it('writes a self-contained page whose eight charts Chromium draws, with the summary and the fallbacks', async () => {
    const report = join(work, 'report.html');
    const r = await sendWithReport(report);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { type: string; report: string; bytes: number; streams: number };
    expect(summary).toMatchObject({ type: 'summary', report, streams: 3 });

    const html = readFileSync(report, 'utf8');
    // Nothing fetched from anywhere: no external script, style, image or link.
    expect(html).not.toMatch(/<(script|link|img|iframe)[^>]*(src|href)=/i);
    expect(html).not.toMatch(/url\(/i);
    expect(html).toContain(`${summary.bytes.toLocaleString('en-US')} bytes`);
    expect(html).toMatch(/sendfile<\/th><td>(on|off): /);
    expect(html).toMatch(/pinning<\/th><td>(on|off): /);
    expect(html).toMatch(/<h2>Placement<\/h2>/);

    const charts = rendered(report);
    expect(charts.map((c) => c.chart)).toEqual([
      'throughput',
      'streams',
      'threads',
      'queued',
      'net-rtt',
      'net-cwnd',
      'net-rate',
      'net-resent',
    ]);
    const byName = Object.fromEntries(charts.map((c) => [c.chart, c]));
    expect(byName.throughput!.drawn).toBe(1);
    expect(byName.streams).toEqual({ chart: 'streams', series: 3, drawn: 3 });
    // Nine stacked bands of thread states (four busy, five blocked-on); each that had any thread
    // in it has an area.
    expect(byName.threads!.series).toBe(9);
    expect(byName.threads!.drawn).toBeGreaterThanOrEqual(3);
    expect(byName.queued!.drawn).toBe(1);
    // The network over time: a line per stream in each of its charts.
    for (const net of ['net-rtt', 'net-cwnd', 'net-rate', 'net-resent'])
      expect(byName[net], net).toEqual({ chart: net, series: 3, drawn: 3 });
    expect(existsSync(join(work, 'report.png'))).toBe(true);
  });
});

describe('issue 31: the network seen, per stream and over time', () => {
  it('samples TCP_INFO of every stream through the transfer, into --timeline and the report', async () => {
    const report = join(work, 'r31.html');
    const timeline = join(work, 'r31.json');
    const run = await sendWithReport(report, ['--json', '--timeline', timeline], 'r31');
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
      seconds: number;
      perStreamBytes: number[];
      networkSamples: number;
    };
    type Net = { ms: number; stream: number; rttUs: number; cwnd: number; bytesSent: number; deliveryRate: number; retransSegs: number };
    const net = (JSON.parse(readFileSync(timeline, 'utf8')) as { network: Net[] }).network;
    expect(summary.networkSamples).toBe(net.length);
    const byStream = [0, 1, 2].map((i) => net.filter((n) => n.stream === i));
    for (const [i, list] of byStream.entries()) {
      // The run lasts ~2 s (the node's --rate); samples come every 20 ms or more, so dozens.
      expect(list.length, `stream ${i}`).toBeGreaterThanOrEqual(10);
      expect(list.length).toBeLessThanOrEqual(Math.ceil((summary.seconds * 1000) / 20) + 2);
      for (let j = 1; j < list.length; j++) {
        expect(list[j]!.ms).toBeGreaterThan(list[j - 1]!.ms);
        expect(list[j]!.bytesSent).toBeGreaterThanOrEqual(list[j - 1]!.bytesSent);
        expect(list[j]!.retransSegs).toBeGreaterThanOrEqual(list[j - 1]!.retransSegs);
      }
      // The last sample follows the node's SUMMARY: everything the stream carried was sent.
      expect(list.at(-1)!.bytesSent).toBeGreaterThanOrEqual(summary.perStreamBytes[i]!);
      expect(list.some((n) => n.cwnd > 0 && n.rttUs > 0)).toBe(true);
    }
    const html = readFileSync(report, 'utf8');
    expect(html).toMatch(/<span data-stream="0">[\s\S]*<span data-stream="2">/);
    const m = /data-tips="([^"]*)"/.exec(dumpDom(report));
    const tips = JSON.parse(unquote(m![1]!)) as Record<string, string>;
    expect(tips['net-rtt']).toMatch(/^\d+\.\d\d s: stream 0 [\d.]+ ms, stream 1 [\d.]+ ms, stream 2 [\d.]+ ms$/);
    expect(tips['net-cwnd']).toMatch(/^\d+\.\d\d s: stream 0 \d+ segments/);
    expect(tips['net-rate']).toMatch(/^\d+\.\d\d s: stream 0 [\d.]+ MiB\/s/);
  }, 120_000);
});

describe('issue 35: reports that answer questions', () => {
  let report: string;
  let timeline: string;
  let run: { status: number | null; stdout: string; stderr: string };
  let html: string;
  let dom: string;
  type Summary = { bytes: number; seconds: number; receiver?: { bytesWritten: number; writers: number } };
  let summary: Summary;

  beforeAll(async () => {
    report = join(work, 'r35.html');
    timeline = join(work, 'r35.json');
    // Stdout and stderr are pipes, not a terminal, as under cron; no --json.
    run = await sendWithReport(report, ['--timeline', timeline], 'r35');
    html = readFileSync(report, 'utf8');
    dom = dumpDom(report);
    summary = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Summary;
  }, 120_000);

  it('samples every 100 ms off a terminal', () => {
    expect(run.status, run.stderr).toBe(0);
    expect(summary.seconds).toBeGreaterThan(1);
    const points = Number(/data-chart="throughput" data-points="(\d+)"/.exec(html)?.[1]);
    // 10 a second; the margin is for start-up and the last partial interval, not for speed.
    expect(points).toBeGreaterThanOrEqual(Math.floor(summary.seconds * 10 * 0.6));
  });

  it('names each stream on the bytes-per-stream axis', () => {
    const svg = /<svg[^>]*data-chart="streams"[\s\S]*?<\/svg>/.exec(html)![0];
    const ticks = [...svg.matchAll(/<text class="xtick"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    expect(ticks).toEqual(['stream 0', 'stream 1', 'stream 2']);
  });

  it('says what blocked threads waited for, and the engine recorded it', () => {
    const legend = /<p class="legend" id="states-legend">([\s\S]*?)<\/p>/.exec(html)![1]!;
    for (const label of [
      'blocked: pool empty',
      'blocked: queue full',
      'blocked: socket',
      'blocked: rate limit',
      'blocked: waiting for disk reads',
    ])
      expect(legend).toContain(label);
    const samples = (JSON.parse(readFileSync(timeline, 'utf8')) as { samples: Record<string, number>[] }).samples;
    const sum = (k: string): number => samples.reduce((s, x) => s + (x[k] ?? 0), 0);
    // The node's --rate holds the data back: the sender's sockets fill and its threads wait on them.
    expect(sum('blockedSocket')).toBeGreaterThan(0);
    for (const x of samples) expect(x.blocked).toBe(x.blockedPool! + x.blockedQueue! + x.blockedSocket! + x.blockedRate! + x.blockedInput!);
  });

  it('shows exact values on hover in every chart', () => {
    const m = /data-tips="([^"]*)"/.exec(dom);
    expect(m, 'the page did not record its tooltips').not.toBeNull();
    const tips = JSON.parse(unquote(m![1]!)) as Record<string, string>;
    expect(tips.throughput).toMatch(/^\d+\.\d\d s: \d+\.\d MiB\/s \([\d,]+ bytes\/s\)$/);
    expect(tips.streams).toMatch(/^stream 1: .* \([\d,]+ bytes\)$/);
    expect(tips.threads).toMatch(/^\d+\.\d\d s: (no thread busy or blocked|.*(reading|sending|processing|blocked: [a-z]).* \d)/);
    expect(tips.queued).toMatch(/^\d+\.\d\d s: [\d.]+ blocks queued$/);
    // Without script, the same values are native tooltips.
    expect(html).toMatch(/<title>\d+\.\d\d s: [\d.]+ MiB\/s/);
  });

  it("puts the node's writers and disk time beside the sender's", () => {
    expect(summary.receiver).toMatchObject({ bytesWritten: summary.bytes });
    expect(summary.receiver!.writers).toBeGreaterThanOrEqual(1);
    const section = /<div id="receiver">([\s\S]*?)<\/div><\/div><\/section>/.exec(html)![1]!;
    expect(section).toContain(`disk writers wrote`);
    expect(section).toContain(`(${summary.bytes.toLocaleString('en-US')} bytes)`);
    expect(section).toMatch(/writing \(pwrite\)<\/th><td class="v">\d+\.\d{3} s/);
    expect(html).toMatch(/<table class="bars" data-side="sender">[\s\S]*blocked: socket/);
  });

  it('says "receiver: not reported" for a node that does not send its figures', async () => {
    const { renderReport } = await import('../dist/cli/report.js');
    const full = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    const page = renderReport({
      summary: { ...full, receiver: undefined, timeline: [] } as never,
      source: 'src',
      target: 'node',
      progress: [],
    });
    expect(page).toContain('receiver: not reported');
  });

  it('stays self-contained: no http(s) address anywhere in the page', () => {
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/<(script|link|img|iframe)[^>]*(src|href)=/i);
  });
});

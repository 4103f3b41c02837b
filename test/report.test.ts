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

function sendWithReport(report: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [CLI, 'send', join(work, 'src'), `${node.url}/r`, '--report', report, '--json', '--streams', '3'],
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

/** What headless Chromium drew: the page's own script records each chart's shapes and their sizes. */
function rendered(file: string): { chart: string; series: number; drawn: number }[] {
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
  const m = /data-rendered="([^"]*)"/.exec(r.stdout);
  expect(m, 'the page did not record what it drew').not.toBeNull();
  return JSON.parse(m![1]!.replace(/&quot;/g, '"')) as { chart: string; series: number; drawn: number }[];
}

describe('send --report', () => {
  it('writes a self-contained page whose four charts Chromium draws, with the summary and the fallbacks', async () => {
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
    expect(charts.map((c) => c.chart)).toEqual(['throughput', 'streams', 'threads', 'queued']);
    const byName = Object.fromEntries(charts.map((c) => [c.chart, c]));
    expect(byName.throughput!.drawn).toBe(1);
    expect(byName.streams).toEqual({ chart: 'streams', series: 3, drawn: 3 });
    // Five stacked bands of thread states; each that had any thread in it has an area.
    expect(byName.threads!.series).toBe(5);
    expect(byName.threads!.drawn).toBeGreaterThanOrEqual(3);
    expect(byName.queued!.drawn).toBe(1);
    expect(existsSync(join(work, 'report.png'))).toBe(true);
  });
});

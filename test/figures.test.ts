// Honest figures (issue 35, item 5): a rate counts the bytes that travelled this time, never
// resumed blocks or files already there; a re-run that moved nothing says so; send and get
// report alike; progress events carry the same rule.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { get, send, serve, type Progress, type StorageNode } from '../dist/sdk/index.js';
import { freshDir, randomFile, runCli, smallTree } from './helpers.js';

const MiB = 1 << 20;
let work: string;
let src: string;
let node: StorageNode;

beforeAll(async () => {
  work = freshDir('figures');
  src = join(work, 'src');
  mkdirSync(src);
  smallTree(src, 200);
  randomFile(join(src, 'blob'), 48 * MiB);
  // 24 MiB/s: a send lasts about two seconds, long enough to stop it half-way.
  node = await serve({ root: join(work, 'root'), auth: false, rate: '24M' });
});

afterAll(async () => {
  await node?.close();
});

/** One CLI run: its JSON summary (stdout, not a terminal) and its human first line (stderr). */
async function cli(args: string[]): Promise<{ summary: Record<string, number>; line: string; stderr: string }> {
  const r = await runCli(args);
  expect(r.status, r.stderr).toBe(0);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, number> & { type: string };
  expect(summary.type).toBe('summary');
  return { summary, line: r.stderr.split('\n').find((l) => /\b(sent|received)\b/.test(l)) ?? '', stderr: r.stderr };
}

describe('issue 35: rates count only the bytes that travelled', () => {
  it('a send stopped half-way and sent again counts the second run alone; progress follows the same rule', async () => {
    const abort = new AbortController();
    const first = send(src, `${node.url}/half`, {
      signal: abort.signal,
      retries: 0,
      onProgress: (p) => {
        if (p.bytesDone > 16 * MiB) abort.abort();
      },
    });
    await expect(first).rejects.toMatchObject({ code: 'E_CANCELLED' });

    const seen: Progress[] = [];
    const s = await send(src, `${node.url}/half`, { onProgress: (p) => seen.push(p) });
    expect(s.bytesAlready).toBe(s.resumedBytes);
    expect(s.bytesAlready).toBeGreaterThan(8 * MiB);
    expect(s.bytesMoved + s.bytesAlready).toBe(s.bytes);
    expect(s.bytesMoved).toBe(s.perStreamBytes.reduce((a, b) => a + b, 0));
    expect(s.bytesPerSecond).toBeCloseTo(s.bytesMoved / s.seconds, 6);
    expect(seen.length).toBeGreaterThan(2);
    for (const p of seen) {
      expect(p.bytesMoved).toBeLessThanOrEqual(p.bytesDone);
      // What was there already is done from the first report, and is no speed.
      expect(p.bytesDone - p.bytesMoved).toBe(s.bytesAlready);
      expect(p.bytesPerSecond).toBeCloseTo(p.seconds > 0 ? p.bytesMoved / p.seconds : 0, 6);
    }
  });

  it('a re-run that moved nothing says "0 B sent" and reports no rate, for send and get alike', async () => {
    const sent = await cli(['send', src, `${node.url}/again`]);
    expect(sent.summary).toMatchObject({ bytesAlready: 0 });
    expect(sent.summary.bytesMoved).toBe(sent.summary.bytes);
    expect(sent.line).toMatch(/^sent 48\.\d MiB in 20\d files, /);
    // A first send has nothing unchanged by size and mtime to report.
    expect(sent.stderr).not.toMatch(/^unchanged:/m);
    const resent = await cli(['send', src, `${node.url}/again`]);
    expect(resent.summary).toMatchObject({ bytes: sent.summary.bytes, bytesMoved: 0, bytesAlready: sent.summary.bytes, bytesPerSecond: 0 });
    expect(resent.line).toMatch(/^0 B sent: 48\.\d MiB already on the node \(20\d files, .*checked in [\d.]+ s\)$/);
    expect(resent.line).not.toMatch(/\/s/);
    // No limit is named for a run in which nothing travelled.
    expect(resent.summary.verdict).toMatchObject({ limit: 'nothing to send' });

    const dest = join(work, 'got');
    const got = await cli(['get', `${node.url}/again/src`, dest]);
    expect(got.summary).toMatchObject({ bytes: sent.summary.bytes, bytesMoved: sent.summary.bytes, bytesAlready: 0 });
    expect(got.line).toMatch(/^received 48\.\d MiB in 20\d files, .* in [\d.]+ s: [\d.]+ [KMG]?i?B\/s$/);
    const regot = await cli(['get', `${node.url}/again/src`, dest]);
    expect(regot.summary).toMatchObject({ bytes: sent.summary.bytes, bytesMoved: 0, bytesAlready: sent.summary.bytes, bytesPerSecond: 0 });
    expect(regot.line).toMatch(/^0 B received: 48\.\d MiB already here \(20\d files, /);
    // The SDK's get reports the same fields.
    const sdk = await get(`${node.url}/again/src`, dest);
    expect(sdk).toMatchObject({ bytes: sent.summary.bytes, bytesMoved: 0, bytesAlready: sent.summary.bytes });
  });
});

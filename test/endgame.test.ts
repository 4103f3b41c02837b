// Issue 31: end-game. When every block is on a stream, an idle stream sends again the blocks a
// slow stream still carries; the node keeps the first copy of each, and the push ends without
// waiting for the slow stream. Here one of two data connections goes through a relay that reads
// it at 256 KiB/s: the push re-sends that stream's blocks on the other, says so, and the file
// arrives identical.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { serve, type StorageNode } from '../dist/sdk/index.js';
import { freshDir, jsonLines, randomFile, runCli } from './helpers.js';
import { relay, type Relay } from './proxy.js';

const MiB = 1 << 20;
let work: string;
let node: StorageNode;
let proxy: Relay;

beforeAll(async () => {
  work = freshDir('endgame');
  node = await serve({ root: join(work, 'root'), auth: false });
  proxy = await relay(node.url);
});

afterAll(async () => {
  await proxy?.close();
  await node?.close();
});

describe('issue 31: end-game', () => {
  it('the blocks a slow stream still carries are sent again on an idle one, and the file arrives identical', async () => {
    const src = join(work, 'big.bin');
    randomFile(src, 24 * MiB);
    // The first connection is the control connection; the data streams follow.
    proxy.slow = { connection: 2, bytesPerSecond: 256 << 10 };
    const r = await runCli(['send', src, `${proxy.address}/eg`, '--streams', '2', '--json', '-v']);
    expect(r.status, r.stderr).toBe(0);
    const s = jsonLines(r.stdout).find((l) => l.type === 'summary')!;
    expect(s.streams).toBe(2);
    // Blocks went twice, counted apart from the bytes of the file.
    expect(s.endgameBlocks as number).toBeGreaterThan(0);
    expect(s.endgameBytes as number).toBeGreaterThanOrEqual(s.endgameBlocks as number);
    expect(s.bytes).toBe(24 * MiB);
    // A block counts once in the streams' bytes, on the stream whose copy was written first.
    expect((s.perStreamBytes as number[]).reduce((a, b) => a + b, 0)).toBe(24 * MiB);
    expect(readFileSync(join(work, 'root', 'eg', 'big.bin')).equals(readFileSync(src))).toBe(true);

    // -v says it, in its words.
    proxy.slow = { connection: proxy.connections + 2, bytesPerSecond: 256 << 10 };
    const v = await runCli(['send', src, `${proxy.address}/eg-v`, '--streams', '2', '-v']);
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout + v.stderr).toMatch(/end-game: \d+ blocks? \([^)]+\) sent again on idle streams while slow ones still carried them/);
    expect(readFileSync(join(work, 'root', 'eg-v', 'big.bin')).equals(readFileSync(src))).toBe(true);
  });
});

// Cancelling with an AbortSignal halfway leaves no incomplete file under a final name, the
// temporary files and journal a resume picks up, and a node that serves the next transfer.
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareTrees, send, serve, type StorageNode } from '../dist/sdk/index.js';
import { allocatedFile, freshDir, smallTree } from './helpers.js';

let work: string;
let src: string;
let node: StorageNode;

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) walk(p, out);
  }
  return out;
}

beforeAll(async () => {
  work = freshDir('cancel');
  src = join(work, 'src');
  // Small files first in stream order ("a-…"), then a 1 GiB file ("z-…") that is cut midway.
  mkdirSync(join(src, 'a-small'), { recursive: true });
  smallTree(join(src, 'a-small'), 2000);
  // Allocated, not sparse (a sparse file's holes would not travel: nothing to cut midway).
  allocatedFile(join(src, 'z-big.bin'), 1 << 30);
  node = await serve({ root: join(work, 'root'), auth: false });
});

afterAll(async () => {
  await node?.close();
});

describe('cancellation', () => {
  it('an abort halfway leaves only complete files under final names, and the node goes on', async () => {
    const abort = new AbortController();
    let cutAt = 0;
    const p = send(src, `${node.url}/cut`, {
      streams: 1,
      signal: abort.signal,
      progressIntervalMs: 1,
      onProgress: (pr) => {
        if (!abort.signal.aborted && pr.bytesDone > pr.bytesTotal * 0.3) {
          cutAt = pr.bytesDone;
          abort.abort();
        }
      },
    });
    await expect(p).rejects.toMatchObject({ code: 'E_CANCELLED' });
    expect(cutAt).toBeGreaterThan(0);

    // The node ends the session once it sees the sender gone, and keeps its temporary files
    // and journal for a resume: nothing partial is under a final name.
    const dest = join(node.root, 'cut', 'src');
    const deadline = Date.now() + 10_000;
    while (node.stats().active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(node.stats().active).toBe(0);
    const left = walk(dest);
    expect(left.filter((f) => f.endsWith('.part')).length).toBeGreaterThan(0);
    expect(existsSync(join(dest, 'z-big.bin'))).toBe(false);
    // Every file that is there under its final name is complete and identical.
    const finals = left.filter((f) => !f.endsWith('.part'));
    // Directories get their modes and mtimes when a transfer completes, so only files count.
    const diffs = (await compareTrees(src, dest, { dirMtimes: false })).filter(
      (d) =>
        d.what !== 'missing' &&
        !(d.what === 'extra' && d.path.endsWith('.part')) &&
        !(d.what === 'mode' && statSync(join(dest, d.path)).isDirectory()),
    );
    expect(diffs).toEqual([]);
    expect(finals.length).toBeGreaterThan(0);
    for (const f of finals) expect(existsSync(join(src, relative(dest, f)))).toBe(true);
    expect(node.stats().failed).toBeGreaterThanOrEqual(1);

    // Sent again, the cut transfer resumes: the blocks the node holds do not travel again.
    const resumed = await send(src, `${node.url}/cut`);
    expect(resumed.resumedBytes).toBeGreaterThan(0);
    expect(await compareTrees(src, dest)).toEqual([]);
    expect(walk(dest).filter((f) => f.endsWith('.part'))).toEqual([]);

    // The same node takes the whole tree next.
    const s = await send(src, `${node.url}/whole`);
    expect(s.bytes).toBeGreaterThan(1 << 30);
    expect(await compareTrees(src, join(node.root, 'whole', 'src'))).toEqual([]);
  });

  it('an already aborted signal rejects at once with E_CANCELLED', async () => {
    const abort = new AbortController();
    abort.abort();
    await expect(send(src, node.url, { signal: abort.signal })).rejects.toMatchObject({ code: 'E_CANCELLED' });
  });
});

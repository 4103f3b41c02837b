// One scratch directory for the whole run, removed once at the end. The disk's ext4 has no
// journal: deleting many files makes creating files slow for minutes afterwards, so tests never
// delete trees between cases; every case writes into a fresh directory under this one.
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'longhaul-test-'));
  process.env.LONGHAUL_TEST_DIR = dir;
  // Asynchronous: vitest runs this before it reaps its last workers, and a synchronous delete of
  // the run's trees (over 100,000 files) blocked its event loop past the 10 s it gives a worker
  // to exit, so it printed "Timeout terminating forks worker" for whichever file ran last.
  return () => rm(dir, { recursive: true, force: true });
}

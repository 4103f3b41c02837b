// One scratch directory for the whole run, removed once at the end. The disk's ext4 has no
// journal: deleting many files makes creating files slow for minutes afterwards, so tests never
// delete trees between cases; every case writes into a fresh directory under this one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'longhaul-test-'));
  process.env.LONGHAUL_TEST_DIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}

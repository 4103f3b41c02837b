// The docs stay true: docs/API.md is what the typings say, the README opens with its two
// commands, and every relative link in the docs points at a file that exists.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { describe, expect, it } from 'vitest';

// A plain ESM script (no typings): the same function writes docs/API.md.
import { renderApi } from '../scripts/api-doc.mjs';

const ROOT = join(import.meta.dirname, '..');

describe('docs', () => {
  it('docs/API.md is generated from the current typings (node scripts/api-doc.mjs)', () => {
    const api = (renderApi as () => string)();
    expect(readFileSync(join(ROOT, 'docs', 'API.md'), 'utf8')).toBe(api);
    for (const name of [
      'send',
      'get',
      'copy',
      'serve',
      'connect',
      'Client',
      'resolveConfig',
      'LonghaulError',
      'SendOptions',
      'ServeOptions',
    ])
      expect(api, name).toContain(`\n## ${name}\n`);
  });

  it('the README starts with the install-and-demo command and the test command', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const block = /```sh\n([\s\S]*?)```/.exec(readme)![1]!.split('\n').filter(Boolean);
    expect(block[0]).toMatch(/^npm ci && npm run demo\s/);
    expect(block[1]).toMatch(/^npm test\s/);
    expect(readFileSync(join(ROOT, '.ci', 'run'), 'utf8')).toMatch(/\nnpm ci --no-audit --no-fund\nnpm test\n/);
  });

  it('relative links in README.md and docs/*.md point at files that exist', () => {
    for (const doc of ['README.md', 'docs/USAGE.md', 'docs/API.md', 'docs/ERRORS.md', 'docs/ARCHITECTURE.md', 'docs/SECURITY.md']) {
      const text = readFileSync(join(ROOT, doc), 'utf8');
      for (const m of text.matchAll(/\]\(([^)#\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        expect(existsSync(join(ROOT, dirname(doc), target)), `${doc} -> ${target}`).toBe(true);
      }
    }
  });
});

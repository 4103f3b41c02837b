// The API surface: targets, error codes and exit statuses, and a snapshot of the generated
// typings so that drift in the binding shows up in review.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { doctor, ERROR_CODES, exitCodeFor, LonghaulError, parseListen, parseTarget } from '../dist/sdk/index.js';
import { fromNative, SDK_ERROR_CODES } from '../dist/sdk/errors.js';
import { native } from '../dist/sdk/native.js';

describe('targets', () => {
  it('parses HOST:PORT[/DEST]', () => {
    expect(parseTarget('127.0.0.1:7878')).toEqual({ host: '127.0.0.1', port: 7878, dest: '' });
    expect(parseTarget('node-1:9/backups/2026/')).toEqual({ host: 'node-1', port: 9, dest: 'backups/2026' });
    expect(parseTarget('[::1]:80//x')).toEqual({ host: '::1', port: 80, dest: 'x' });
    // issue 32: no port is serve's default port.
    expect(parseTarget('node-1/backups')).toEqual({ host: 'node-1', port: 7878, dest: 'backups' });
    expect(parseTarget('node-1')).toEqual({ host: 'node-1', port: 7878, dest: '' });
    expect(parseTarget('[::1]/x')).toEqual({ host: '::1', port: 7878, dest: 'x' });
  });

  it('parses listening addresses, where port 0 means any free port', () => {
    expect(parseListen('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseListen('[::]:7878')).toEqual({ host: '::', port: 7878 });
    expect(() => parseListen('127.0.0.1:7878/dest')).toThrow(LonghaulError);
  });

  it('refuses what is not a target with E_USAGE', () => {
    for (const bad of ['', 'host:', ':80', 'host:99999', 'host:0', 'a:b:c', '::1/x']) {
      expect(() => parseTarget(bad), bad).toThrow(LonghaulError);
      try {
        parseTarget(bad);
      } catch (e) {
        expect((e as LonghaulError).code).toBe('E_USAGE');
      }
    }
  });
});

describe('errors', () => {
  it('every engine code maps to its own documented exit status, never the catch-all', () => {
    const codes = native.errorCodes();
    expect(codes.length).toBeGreaterThan(10);
    for (const c of codes) expect(exitCodeFor(c), c).not.toBe(1);
    const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'ERRORS.md'), 'utf8');
    for (const c of codes) expect(doc, `docs/ERRORS.md lacks ${c}`).toContain(`\`${c}\``);
  });

  it('turns an addon error into a LonghaulError with its code', () => {
    // Issue 30: the addon's errors carry the engine's code as `code`, the message without it.
    const e = fromNative(Object.assign(new Error('block checksum mismatch at offset 0'), { code: 'E_CHECKSUM' }));
    expect(e).toBeInstanceOf(LonghaulError);
    expect(e.code).toBe('E_CHECKSUM');
    expect(e.message).toBe('block checksum mismatch at offset 0');
    expect(fromNative(new Error('something else')).code).toBe('E_INTERNAL');
  });

  it('issue 30: the addon throws with the code as err.code and the message alone', () => {
    let thrown: unknown;
    try {
      native.serve({ root: '.', port: 70_000 });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: 'E_USAGE', message: 'port 70000 is out of range' });
    expect(fromNative(thrown)).toMatchObject({ code: 'E_USAGE', message: 'port 70000 is out of range' });
    // What napi-rs refuses itself carries napi's status, which is no code of ours.
    try {
      native.serve({ root: 5 as unknown as string });
    } catch (err) {
      thrown = err;
    }
    expect((thrown as { code: string }).code).not.toMatch(/^E_/);
    expect(fromNative(thrown).code).toBe('E_INTERNAL');
  });

  it("issue 30: LonghaulError's codes are the engine's codes and the SDK's own, nothing else", () => {
    const engine = native.errorCodes();
    expect([...ERROR_CODES].filter((c) => !SDK_ERROR_CODES.includes(c)).sort()).toEqual([...engine].sort());
    for (const c of SDK_ERROR_CODES) expect(engine).not.toContain(c);
  });
});

describe('doctor', () => {
  it('probes every fast path, and a forced fallback shows with its reason and advice', () => {
    const names = doctor().map((c) => c.name);
    for (const n of ['sendfile', 'O_TMPFILE', 'mlock', 'pinning', 'numa', 'placement', 'socket buffers', 'open files', 'io_uring'])
      expect(names).toContain(n);
    process.env.LONGHAUL_NO_SENDFILE = '1';
    try {
      const sf = doctor().find((c) => c.name === 'sendfile')!;
      expect(sf.ok).toBe(false);
      expect(sf.detail).toMatch(/LONGHAUL_NO_SENDFILE/);
      expect(sf.advice).toBeTruthy();
    } finally {
      delete process.env.LONGHAUL_NO_SENDFILE;
    }
    expect(doctor().find((c) => c.name === 'sendfile')!.ok).toBe(true);
    process.env.LONGHAUL_NO_TMPFILE = '1';
    try {
      const t = doctor().find((c) => c.name === 'O_TMPFILE')!;
      expect([t.ok, t.detail]).toEqual([false, expect.stringMatching(/LONGHAUL_NO_TMPFILE/)]);
      expect(t.advice).toMatch(/temporary name/);
    } finally {
      delete process.env.LONGHAUL_NO_TMPFILE;
    }
    expect(doctor().find((c) => c.name === 'O_TMPFILE')!.ok).toBe(true);
    // Issue 29: directories beneath a root are opened with openat2 where the kernel has it, and
    // the component-by-component walk can be forced.
    expect(doctor().find((c) => c.name === 'openat2')!.ok).toBe(true);
    process.env.LONGHAUL_NO_OPENAT2 = '1';
    try {
      const o = doctor().find((c) => c.name === 'openat2')!;
      expect([o.ok, o.detail]).toEqual([false, expect.stringMatching(/LONGHAUL_NO_OPENAT2/)]);
      expect(o.advice).toMatch(/one component at a time/);
    } finally {
      delete process.env.LONGHAUL_NO_OPENAT2;
    }
  });
});

describe('generated typings', () => {
  it('match the reviewed snapshot', async () => {
    const dts = readFileSync(join(import.meta.dirname, '..', 'native', 'binding.d.cts'), 'utf8');
    await expect(dts).toMatchFileSnapshot('./__snapshots__/binding.d.cts.snap');
  });
});

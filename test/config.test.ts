// Configuration: precedence (default < file < LONGHAUL_* < flag), each kind of bad value named
// by its key, the JSON Schema in docs/ kept in step with the checks, and `longhaul config`.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { CONFIG_KEYS, configJsonSchema, LonghaulError, resolveConfig, type ResolveInput } from '../dist/sdk/index.js';
import { freshDir } from './helpers.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');

function configFile(content: unknown): string {
  const p = join(freshDir('config'), 'longhaul.config.json');
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

/** The error resolveConfig throws for `input`: E_USAGE for a bad flag, E_CONFIG for a bad file or variable. */
function configError(input: ResolveInput): LonghaulError {
  try {
    resolveConfig({ env: {}, ...input });
  } catch (err) {
    expect(err).toBeInstanceOf(LonghaulError);
    expect((err as LonghaulError).code).toBe(input.flags ? 'E_USAGE' : 'E_CONFIG');
    return err as LonghaulError;
  }
  throw new Error(`no error for ${JSON.stringify(input)}`);
}

describe('config precedence', () => {
  it('a flag beats the environment, which beats the file, which beats the default', () => {
    const file = configFile({ streams: 3, blockSize: '8M', scheduler: 'adaptive', pin: 'never', capacity: '1G' });
    const r = resolveConfig({
      configFile: file,
      env: { LONGHAUL_STREAMS: '5', LONGHAUL_SCHEDULER: 'pipelined' },
      flags: { streams: '7' },
    });
    expect(r.values).toMatchObject({
      streams: 7,
      scheduler: 'pipelined',
      blockSize: 8 << 20,
      pin: 'never',
      capacity: 2 ** 30,
      digest: 'none',
    });
    expect(r.sources.streams).toEqual({ kind: 'flag', name: '--streams' });
    expect(r.sources.scheduler).toEqual({ kind: 'env', name: 'LONGHAUL_SCHEDULER' });
    expect(r.sources.blockSize).toEqual({ kind: 'file', path: file });
    expect(r.sources.digest).toEqual({ kind: 'default' });
    expect(r.sources.poolBuffers).toBeUndefined();
    expect(r.file).toBe(file);
  });

  it('a switch (resume) is true or false in the file and the environment, --no-resume on the command line', () => {
    expect(resolveConfig({ env: {} }).values.resume).toBe(true);
    expect(resolveConfig({ env: {}, configFile: configFile({ resume: false }) }).values.resume).toBe(false);
    expect(resolveConfig({ env: { LONGHAUL_RESUME: 'no' } }).values.resume).toBe(false);
    // commander gives false for --no-resume, true for --resume, nothing when neither is given.
    expect(resolveConfig({ env: { LONGHAUL_RESUME: 'false' }, flags: { resume: true } }).values.resume).toBe(true);
    expect(resolveConfig({ env: { LONGHAUL_RESUME: 'false' }, flags: { resume: undefined } }).values.resume).toBe(false);
    expect(configError({ env: { LONGHAUL_RESUME: 'maybe' } }).message).toMatch(/resume = "maybe".*expected true or false/);
  });

  it('finds ./longhaul.config.json, or the file LONGHAUL_CONFIG names; --config beats both', () => {
    const inCwd = configFile({ streams: 4 });
    const cwd = join(inCwd, '..');
    expect(resolveConfig({ cwd, env: {} }).values.streams).toBe(4);
    const other = configFile({ streams: 9 });
    expect(resolveConfig({ cwd, env: { LONGHAUL_CONFIG: other } }).values.streams).toBe(9);
    const third = configFile({ streams: 11 });
    expect(resolveConfig({ cwd, env: { LONGHAUL_CONFIG: other }, configFile: third }).values.streams).toBe(11);
  });

  it('returns only the keys a command takes, but checks the others too', () => {
    const file = configFile({ streams: 3, maxTransfers: 8 });
    const r = resolveConfig({ configFile: file, env: {}, keys: ['streams'] });
    expect(r.values).toEqual({ streams: 3 });
    const e = configError({ configFile: configFile({ streams: 3, maxTransfers: 0 }), keys: ['streams'] });
    expect(e.message).toMatch(/maxTransfers/);
  });

  it('parses peer rates from a flag, the environment and the file alike', () => {
    expect(resolveConfig({ env: {}, flags: { peerRates: ['10.0.0.7=200M', '::1=1G'] } }).values.peerRates).toEqual({
      '10.0.0.7': 200 << 20,
      '::1': 2 ** 30,
    });
    expect(resolveConfig({ env: { LONGHAUL_PEER_RATES: '10.0.0.8=1K' } }).values.peerRates).toEqual({ '10.0.0.8': 1024 });
    expect(resolveConfig({ env: {}, configFile: configFile({ peerRates: { '10.0.0.9': 4096 } }) }).values.peerRates).toEqual({
      '10.0.0.9': 4096,
    });
  });
});

describe('bad config values name the key, the value and what is allowed', () => {
  const cases: [string, ResolveInput, RegExp][] = [
    ['an integer out of range (flag)', { flags: { streams: '0' } }, /^--streams 0 is not valid: .*integer in 1\.\.256/],
    ['not an integer (env)', { env: { LONGHAUL_STREAMS: 'two' } }, /streams = "two" \(from environment LONGHAUL_STREAMS\).*integer/],
    ['a fraction (file)', { configFile: '' }, /poolBuffers = 1\.5 .*integer in 1\.\.4096/],
    ['a size that is not one', { flags: { blockSize: '4Q' } }, /--block-size 4Q is not valid: .*size such as 1M/],
    ['a size out of range', { env: { LONGHAUL_BLOCK_SIZE: '1G' } }, /blockSize = "1G".*4K\.\.64M/],
    ['a choice not offered', { flags: { scheduler: 'fastest' } }, /--scheduler fastest is not valid: .*one of pipelined, adaptive, auto/],
    ['a CPU list', { flags: { coresIo: '2-x' } }, /--cores-io 2-x is not valid: .*CPU list/],
    ['an address', { env: { LONGHAUL_LISTEN: 'localhost' } }, /listen = "localhost".*HOST:PORT/],
    ['peer rates', { flags: { peerRates: ['10.0.0.7'] } }, /--peer-rate 10\.0\.0\.7 is not valid: .*PEER=RATE/],
    ['a log level', { env: { LONGHAUL_LOG_LEVEL: 'loud' } }, /logLevel = "loud".*one of fatal, error/],
    ['an unknown key in the file', { configFile: '' }, /unknown key "stream".*did you mean streams/],
    ['an unknown LONGHAUL_ variable', { env: { LONGHAUL_STRAEMS: '2' } }, /unknown environment variable LONGHAUL_STRAEMS/],
    ['a file that is not JSON', { configFile: '' }, /is not JSON/],
    ['a file that is not an object', { configFile: '' }, /must hold a JSON object/],
    ['a file that does not exist', { configFile: '/no/such/longhaul.json' }, /cannot read the config file \/no\/such\/longhaul\.json/],
  ];
  const files: Record<string, string> = {
    'a fraction (file)': JSON.stringify({ poolBuffers: 1.5 }),
    'an unknown key in the file': JSON.stringify({ stream: 2 }),
    'a file that is not JSON': '{ streams: 2 }',
    'a file that is not an object': '[2]',
  };
  for (const [what, input, message] of cases) {
    it(what, () => {
      const e = configError(files[what] ? { ...input, configFile: configFile(files[what]) } : input);
      expect(e.message).toMatch(message);
    });
  }

  it('the CLI refuses a bad value before connecting: exit 2, E_CONFIG, the key named', () => {
    const r = spawnSync(process.execPath, [CLI, 'send', '/nonexistent', '127.0.0.1:1'], {
      env: { ...process.env, LONGHAUL_STREAMS: '999' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^longhaul: E_CONFIG: streams = "999" \(from environment LONGHAUL_STREAMS\)/);
  });
});

it('serve takes its root from the config file, and says so when none is set', () => {
  const none = spawnSync(process.execPath, [CLI, 'serve', '--no-auth'], { encoding: 'utf8', cwd: freshDir('no-config') });
  expect(none.status).toBe(2);
  expect(none.stderr).toMatch(/^longhaul: E_CONFIG: root is not set: give --root DIR, LONGHAUL_ROOT or "root" in the config file/);
  const root = join(freshDir('config-root'), 'data');
  const file = configFile({ root, listen: '127.0.0.1:0' });
  const r = spawnSync(process.execPath, [CLI, 'config', '--config', file, '--json'], { encoding: 'utf8' });
  expect((JSON.parse(r.stdout) as { options: { root: { value: string } } }).options.root.value).toBe(root);
});

describe('longhaul config', () => {
  it('prints each value and where it came from', () => {
    const file = configFile({ blockSize: '1M', logLevel: 'debug' });
    const r = spawnSync(process.execPath, [CLI, 'config', '--config', file, '--streams', '6', '--json'], {
      env: { ...process.env, LONGHAUL_DIGEST: 'blake3' },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { file: string; options: Record<string, { value: unknown; source: string }> };
    expect(out.file).toBe(file);
    expect(Object.keys(out.options)).toEqual(CONFIG_KEYS);
    expect(out.options.streams).toEqual({ value: 6, source: 'flag --streams' });
    expect(out.options.digest).toEqual({ value: 'blake3', source: 'environment LONGHAUL_DIGEST' });
    expect(out.options.blockSize).toEqual({ value: 1 << 20, source: file });
    expect(out.options.logLevel).toEqual({ value: 'debug', source: file });
    expect(out.options.scheduler).toEqual({ value: 'auto', source: 'the default' });
    const text = spawnSync(process.execPath, [CLI, 'config', '--config', file], { encoding: 'utf8' });
    expect(text.stdout).toMatch(/^blockSize\s+1048576\s+\S*longhaul\.config\.json$/m);
  });

  it('docs/config.schema.json is the schema the code exports, and it lists every key', () => {
    const docs = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'docs', 'config.schema.json'), 'utf8')) as {
      properties: Record<string, { description?: string }>;
      additionalProperties: boolean;
    };
    expect(docs).toEqual(configJsonSchema());
    const cli = spawnSync(process.execPath, [CLI, 'config', '--schema'], { encoding: 'utf8' });
    expect(JSON.parse(cli.stdout)).toEqual(docs);
    for (const k of CONFIG_KEYS) expect(docs.properties[k]?.description, k).toBeTruthy();
    expect(docs.additionalProperties).toBe(false);
  });
});

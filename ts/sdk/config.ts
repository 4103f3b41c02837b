// Configuration: one check (check.ts) for every option the CLI takes, read from a file
// (`longhaul.config.json`, `--config FILE` or LONGHAUL_CONFIG), from LONGHAUL_* environment
// variables and from flags, in that order of precedence (a flag beats the environment, which
// beats the file, which beats the default). Every bad value is an E_CONFIG error that names the
// key, the value, where it came from and what is allowed. `longhaul config` prints the result.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import { bool, converted, intIn, matching, nonEmpty, oneOf, sizeIn, stringWhere, type Check, type Output } from './check.js';
import { parseSize } from './common.js';
import { DEFAULTS, LIMITS, RETRY } from './defaults.js';
import { LonghaulError } from './errors.js';
import { parseListen } from './target.js';

const fileName = nonEmpty('expected a file name');

/** A certificate's SHA-256 as `serve --tls` prints it (`sha256:` optional, `:` between bytes allowed). */
const fingerprint = matching(/^(sha256:)?([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$/, 'expected sha256: and 64 hex digits');

const cpuList = matching(/^\d+(-\d+)?(,\d+(-\d+)?)*$/, 'expected a CPU list such as 0-3,8');

const hostPort = stringWhere((v) => {
  try {
    parseListen(v);
    return true;
  } catch {
    return false;
  }
}, 'expected HOST:PORT, e.g. 127.0.0.1:7878 ([::1]:7878 for IPv6)');

const PEER_RATES_ERROR = 'expected PEER=RATE pairs, e.g. 10.0.0.7=200M,10.0.0.8=1G';
const peerRates = converted(
  {
    anyOf: [
      { type: 'string' },
      { type: 'object', propertyNames: { type: 'string' }, additionalProperties: { type: ['number', 'string'] } },
    ],
  },
  (v): Record<string, number> => {
    // From a flag or the environment: `10.0.0.7=200M,10.0.0.8=1G`; from the file, an object.
    let entries: (readonly [string, unknown])[];
    if (typeof v === 'string')
      entries = v
        .split(',')
        .filter((s) => s.trim() !== '')
        .map((s) => {
          const i = s.lastIndexOf('=');
          return i > 0 ? ([s.slice(0, i).trim(), s.slice(i + 1).trim()] as const) : ([s, ''] as const);
        });
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) entries = Object.entries(v);
    else throw new Error();
    const out: Record<string, number> = {};
    for (const [peer, rate] of entries) {
      if (peer === '' || rate === '' || (typeof rate !== 'string' && typeof rate !== 'number')) throw new Error();
      out[peer] = parseSize(rate);
    }
    return out;
  },
  PEER_RATES_ERROR,
);

const copyTargets = converted(
  { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
  (v): string[] => {
    // From a flag or the environment: `10.0.0.8:7878,node-b:7878`; from the file, a list too.
    if (typeof v !== 'string' && !(Array.isArray(v) && v.every((s) => typeof s === 'string'))) throw new Error();
    const list = (typeof v === 'string' ? v.split(',') : (v as string[])).map((s) => s.trim()).filter((s) => s !== '');
    for (const t of list) if (parseListen(t).port === 0) throw new Error();
    return list;
  },
  'expected HOST:PORT targets, e.g. 10.0.0.8:7878,node-b:7878 ([::1]:7878 for IPv6)',
);

/** `auto` or a stream count: `send` opens streams by measurement; `get` and `copy` take 2 for `auto`. */
const streamsAutoOrCount = converted(
  {
    anyOf: [
      { const: 'auto' },
      { type: 'integer', minimum: LIMITS.streams.min, maximum: LIMITS.streams.max },
      { type: 'string', pattern: '^\\s*\\d+\\s*$' },
    ],
  },
  (v): number | 'auto' => {
    if (v === 'auto') return 'auto';
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < LIMITS.streams.min || n > LIMITS.streams.max) throw new Error();
    return n;
  },
  `expected auto or an integer in ${LIMITS.streams.min}..${LIMITS.streams.max}`,
);

/** What each option is, its flag and the commands that take it. */
interface Spec {
  schema: Check<unknown>;
  description: string;
  /** The value's name in `--help`; '' for a switch (`--KEY` and `--no-KEY`). */
  arg: string;
  /** The flag, when it is not the key in kebab case. */
  flag?: string;
  default?: unknown;
  commands: readonly Command[];
}

export type Command = 'send' | 'get' | 'copy' | 'serve' | 'ls' | 'readv' | 'stats' | 'demo';
const TRANSFER = ['send', 'get', 'copy'] as const;
const CLIENT = ['send', 'get', 'copy', 'ls', 'readv', 'stats'] as const;

const SPECS = {
  streams: {
    schema: streamsAutoOrCount,
    description: `parallel TCP data streams: auto (send starts with ${DEFAULTS.send.streams} and opens more while they raise the goodput, up to 16; get and copy take ${DEFAULTS.send.streams}) or a fixed count`,
    arg: 'n|auto',
    default: 'auto',
    commands: [...TRANSFER, 'demo'],
  },
  blockSize: {
    schema: sizeIn(LIMITS.blockSize.min, LIMITS.blockSize.max, '1M'),
    description: 'block size: the unit read, checksummed and sent',
    arg: 'size',
    default: DEFAULTS.send.blockSize,
    commands: TRANSFER,
  },
  poolBuffers: {
    schema: intIn(LIMITS.poolBuffers.min, LIMITS.poolBuffers.max),
    description: `buffers of one block each in the pool (sender: 2 x streams + readers; node: ${DEFAULTS.serve.poolBuffers})`,
    arg: 'n',
    commands: ['send', 'serve'],
  },
  readers: {
    schema: intIn(LIMITS.readers.min, LIMITS.readers.max),
    description: 'disk-reader threads (default min(streams, 4), at least 2)',
    arg: 'n',
    commands: ['send'],
  },
  writers: {
    schema: intIn(LIMITS.writers.min, LIMITS.writers.max),
    description: `disk-writer threads per transfer (default ${DEFAULTS.serve.writers})`,
    arg: 'n',
    commands: ['serve'],
  },
  scheduler: {
    schema: oneOf(['pipelined', 'adaptive', 'auto']),
    description: 'pipelined (dedicated threads), adaptive (Vyukov workers) or auto (probes both)',
    arg: 'name',
    default: DEFAULTS.send.scheduler,
    commands: ['send'],
  },
  digest: {
    schema: oneOf(['none', 'blake3']),
    description: 'none, or blake3: a BLAKE3 of every block, checked by the node (XXH3 always)',
    arg: 'name',
    default: DEFAULTS.send.digest,
    commands: ['send'],
  },
  verify: {
    schema: oneOf(['block', 'full']),
    description: "block (XXH3 of every block on arrival) or full (also each file's BLAKE3, checked on the file read back by the receiver)",
    arg: 'mode',
    default: DEFAULTS.send.verify,
    commands: TRANSFER,
  },
  congestion: {
    schema: matching(/^(auto|system|[a-z0-9_]{1,15})$/, 'auto, system or an algorithm such as bbr or cubic'),
    description:
      "TCP congestion control of the data streams: auto (BBR where the kernel allows), system (the host's default) or a name such as cubic",
    arg: 'name',
    default: DEFAULTS.send.congestion,
    commands: ['send', 'serve'],
  },
  coresIo: {
    schema: cpuList,
    description: 'CPUs for I/O threads, e.g. 2-7 (default: near the NIC and the disk)',
    arg: 'cpus',
    commands: ['send', 'serve'],
  },
  coresOther: { schema: cpuList, description: 'CPUs for other work, e.g. 0-1', arg: 'cpus', commands: ['send', 'serve'] },
  pin: {
    schema: oneOf(['auto', 'always', 'never']),
    description: 'pin threads to cores: auto, always or never',
    arg: 'mode',
    default: DEFAULTS.send.pin,
    commands: ['send', 'serve'],
  },
  ioTimeout: {
    schema: intIn(LIMITS.timeoutSeconds.min, LIMITS.timeoutSeconds.max),
    description: 'seconds the node has to answer and to take each block, then E_TIMEOUT',
    arg: 'seconds',
    default: DEFAULTS.send.ioTimeoutMs / 1000,
    commands: ['send'],
  },
  idleTimeout: {
    schema: intIn(LIMITS.timeoutSeconds.min, LIMITS.timeoutSeconds.max),
    description: 'seconds a sender may send nothing before its transfer fails with E_TIMEOUT',
    arg: 'seconds',
    default: DEFAULTS.serve.idleTimeoutMs / 1000,
    commands: ['serve'],
  },
  resume: {
    schema: bool,
    description:
      "resume from the receiver's journal of an earlier attempt (the node's for send, DEST/.longhaul for get), skipping files it holds with the same size and mtime (--no-resume moves everything)",
    arg: '',
    default: DEFAULTS.send.resume,
    commands: ['send', 'get'],
  },
  checksum: {
    schema: bool,
    description:
      'decide which files the destination already holds by their BLAKE3 (both ends hash the files of the same size; only those that differ are sent) rather than by size and mtime',
    arg: '',
    default: false,
    commands: ['send', 'get'],
  },
  delete: {
    schema: bool,
    description:
      'after the transfer verified, delete what the node holds under DEST/SRC and SRC does not (what --exclude leaves out is kept), as rsync -a --delete SRC DEST/',
    arg: '',
    default: false,
    commands: ['send'],
  },
  owner: {
    schema: bool,
    description:
      "keep every entry's numeric owner (the receiving side sets it when it runs as root: the node for send, this side for get; otherwise it is named as not kept); -a turns it on",
    arg: '',
    default: false,
    commands: ['send', 'get'],
  },
  group: {
    schema: bool,
    description:
      "keep every entry's numeric group (the receiving side sets it when it runs as root: the node for send, this side for get; otherwise it is named as not kept); -a turns it on",
    arg: '',
    default: false,
    commands: ['send', 'get'],
  },
  xattrs: {
    schema: bool,
    description:
      'keep extended attributes: user.* always, the others (ACLs among them) where the receiving side (the node for send, this side for get) runs as root; what is not kept is named; -a turns it on',
    arg: '',
    default: false,
    commands: ['send', 'get'],
  },
  keepSetid: {
    schema: bool,
    description:
      'give received files and directories the setuid and setgid bits the sender asks for (serve: what clients push; get: what the node sends); by default they are cleared',
    arg: '',
    default: DEFAULTS.serve.keepSetid,
    commands: ['serve', 'get'],
  },
  bench: {
    schema: bool,
    description:
      'accept bench sessions (longhaul bench: generated data checked and discarded, nothing stored); --no-bench refuses them with E_DENIED',
    arg: '',
    default: DEFAULTS.serve.bench,
    commands: ['serve'],
  },
  retries: {
    schema: intIn(0, RETRY.maxRetries),
    description: 'after a broken connection, a timeout, a bad block or a busy node, send again (resuming) this many times',
    arg: 'n',
    default: RETRY.retries,
    commands: ['send'],
  },
  retryDelay: {
    schema: intIn(0, RETRY.maxDelayOptionMs / 1000),
    description: `seconds before the first retry, doubling each time up to ${RETRY.maxDelayMs / 1000}`,
    arg: 'seconds',
    default: RETRY.delayMs / 1000,
    commands: ['send'],
  },
  fsync: {
    schema: oneOf(['none', 'file', 'end']),
    description:
      'make received files durable: none (kernel writeback, as cp and rsync), file (fsync each before its rename) or end (one syncfs per transfer)',
    arg: 'mode',
    default: DEFAULTS.serve.fsync,
    commands: ['serve'],
  },
  tokenFile: {
    schema: fileName,
    description: "file holding the node's shared token (LONGHAUL_TOKEN holds the token itself)",
    arg: 'file',
    commands: [...CLIENT, 'serve'],
  },
  tlsPin: {
    schema: fingerprint,
    description: "TLS to the node, trusting the certificate with this SHA-256 (what 'serve --tls' prints)",
    arg: 'sha256:hex',
    commands: [...CLIENT],
  },
  tlsCa: {
    schema: fileName,
    description: 'TLS to the node, trusting certificates that chain to a CA in this PEM file (for the host name given)',
    arg: 'file',
    commands: [...CLIENT],
  },
  tls: {
    schema: bool,
    description:
      'TLS 1.3 on every connection; plaintext clients are refused (E_TLS). Without --tls-cert, a self-signed certificate whose fingerprint is printed',
    arg: '',
    default: false,
    commands: ['serve'],
  },
  tlsCert: {
    schema: fileName,
    description: 'PEM certificate chain for TLS (with --tls-key; implies --tls)',
    arg: 'file',
    commands: ['serve'],
  },
  tlsKey: {
    schema: fileName,
    description: 'PEM private key for TLS (with --tls-cert)',
    arg: 'file',
    commands: ['serve'],
  },
  peerTlsPin: {
    schema: fingerprint,
    description: 'TLS to the receiving node of a copy, trusting the certificate with this SHA-256',
    arg: 'sha256:hex',
    commands: ['serve'],
  },
  peerTlsCa: {
    schema: fileName,
    description: 'TLS to the receiving node of a copy, trusting certificates that chain to a CA in this PEM file',
    arg: 'file',
    commands: ['serve'],
  },
  root: {
    schema: nonEmpty('expected a directory'),
    description: 'directory the node stores into (created if missing)',
    arg: 'dir',
    commands: ['serve'],
  },
  listen: {
    schema: hostPort,
    description: 'address the node listens on',
    arg: 'host:port',
    default: '127.0.0.1:7878',
    commands: ['serve'],
  },
  capacity: {
    schema: sizeIn(0, Number.MAX_SAFE_INTEGER, '500G'),
    description: 'bytes the node may store (default: no limit)',
    arg: 'size',
    commands: ['serve'],
  },
  rate: {
    schema: sizeIn(1, Number.MAX_SAFE_INTEGER, '1G'),
    description: 'bytes per second: for serve, all transfers together; for send and get, all their streams together (default: no limit)',
    arg: 'size',
    commands: ['serve', 'send', 'get'],
  },
  peerRates: {
    schema: peerRates,
    description: 'bytes per second per peer address, e.g. 10.0.0.7=200M (flag repeatable)',
    arg: 'peer=size',
    flag: '--peer-rate',
    commands: ['serve'],
  },
  resumeTtl: {
    schema: intIn(LIMITS.resumeTtlSeconds.min, LIMITS.resumeTtlSeconds.max),
    description:
      'seconds the files a failed push keeps for its resume stay (counted as stored) after its last block; then the node removes them',
    arg: 'seconds',
    default: DEFAULTS.serve.resumeTtlMs / 1000,
    commands: ['serve'],
  },
  maxTransfers: {
    schema: intIn(LIMITS.maxTransfers.min, LIMITS.maxTransfers.max),
    description: 'transfers at once; more get E_BUSY',
    arg: 'n',
    default: DEFAULTS.serve.maxTransfers,
    commands: ['serve'],
  },
  maxConnections: {
    schema: intIn(LIMITS.maxConnections.min, LIMITS.maxConnections.max),
    description:
      'connections open at once (lowered to what the descriptor limit allows); past it the oldest still in its handshake is closed, or E_BUSY',
    arg: 'n',
    default: DEFAULTS.serve.maxConnections,
    commands: ['serve'],
  },
  maxPerPeer: {
    schema: intIn(LIMITS.maxPerPeer.min, LIMITS.maxPerPeer.max),
    description: 'connections open at once from one IP address; more get E_BUSY',
    arg: 'n',
    default: DEFAULTS.serve.maxPerPeer,
    commands: ['serve'],
  },
  memory: {
    schema: sizeIn(LIMITS.memory.min, LIMITS.memory.max, '2G'),
    description: `memory for the buffer pools of all transfers and the indexes they hold (the push pool, ${DEFAULTS.serve.poolBuffers} x ${DEFAULTS.serve.maxBlock >> 20} MiB, counts from the start); past it a new transfer gets E_BUSY with a retry-after hint`,
    arg: 'size',
    default: DEFAULTS.serve.memory,
    commands: ['serve'],
  },
  copyTo: {
    schema: copyTargets,
    description:
      'HOST:PORT targets this node may copy to (comma-separated; flag repeatable); a copy elsewhere gets E_DENIED (default: none)',
    arg: 'host:port,...',
    commands: ['serve'],
  },
  metrics: { schema: hostPort, description: 'serve Prometheus metrics at http://HOST:PORT/metrics', arg: 'host:port', commands: ['serve'] },
  logLevel: {
    schema: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    description: 'level of the JSON log lines on stderr (pino levels)',
    arg: 'level',
    default: 'info',
    commands: ['serve'],
  },
} as const satisfies Record<string, Spec>;

export type ConfigKey = keyof typeof SPECS;
export const CONFIG_KEYS = Object.keys(SPECS) as ConfigKey[];

/** The effective value of every option: parsed (sizes in bytes, counts as numbers). */
export type Config = { -readonly [K in ConfigKey]?: Output<(typeof SPECS)[K]['schema']> };

export type Source = { kind: 'default' } | { kind: 'file'; path: string } | { kind: 'env'; name: string } | { kind: 'flag'; name: string };

export interface ResolvedConfig {
  values: Config;
  sources: Partial<Record<ConfigKey, Source>>;
  /** The file read, if any. */
  file?: string;
}

export function specOf(key: ConfigKey): Spec {
  return SPECS[key];
}

export function keysFor(command: Command): ConfigKey[] {
  return CONFIG_KEYS.filter((k) => (SPECS[k].commands as readonly Command[]).includes(command));
}

export function flagOf(key: ConfigKey): string {
  const spec: Spec = SPECS[key];
  return spec.flag ?? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

export function envOf(key: ConfigKey): string {
  return `LONGHAUL_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** LONGHAUL_* variables that are not options: the token, the config file, the forced fallbacks, the tests' scratch directory, stress switch and injected panic. */
const OTHER_ENV = new Set([
  'LONGHAUL_TOKEN',
  'LONGHAUL_CONFIG',
  'LONGHAUL_NO_MLOCK',
  'LONGHAUL_NO_PIN',
  'LONGHAUL_NO_SENDFILE',
  'LONGHAUL_NO_TMPFILE',
  'LONGHAUL_NO_OPENAT2',
  'LONGHAUL_TEST_DIR',
  'LONGHAUL_STRESS',
  'LONGHAUL_TEST_PANIC',
]);

export const CONFIG_FILE = 'longhaul.config.json';

function describe(s: Source): string {
  switch (s.kind) {
    case 'default':
      return 'the default';
    case 'file':
      return s.path;
    case 'env':
      return `environment ${s.name}`;
    case 'flag':
      return `flag ${s.name}`;
  }
}

export { describe as describeSource };

function configError(message: string): LonghaulError {
  return new LonghaulError('E_CONFIG', message);
}

function readFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw configError(`cannot read the config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw configError(`the config file ${path} is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw configError(`the config file ${path} must hold a JSON object`);
  return parsed as Record<string, unknown>;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

function unknownKey(key: string, where: string): LonghaulError {
  const plain = key.toLowerCase().replace(/[-_]/g, '');
  const near = CONFIG_KEYS.filter((k) => distance(k.toLowerCase(), plain) <= 2);
  return configError(
    `unknown key ${JSON.stringify(key)} in ${where}${near.length ? ` (did you mean ${near[0]}?)` : ''}; known keys: ${CONFIG_KEYS.join(', ')}`,
  );
}

export interface ResolveInput {
  /** Raw flag values by key, as commander gives them (strings; arrays for repeatable flags). */
  flags?: Partial<Record<ConfigKey, unknown>>;
  /** An explicit config file (`--config`); otherwise LONGHAUL_CONFIG, then ./longhaul.config.json if it exists. */
  configFile?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Only these keys (a command's); keys of other commands in the file or environment are checked but not returned. */
  keys?: readonly ConfigKey[];
}

/** Reads the file, the environment and the flags; throws E_CONFIG naming the first bad key. */
export function resolveConfig(input: ResolveInput = {}): ResolvedConfig {
  const env = input.env ?? process.env;
  const cwd = input.cwd ?? process.cwd();
  const keys = input.keys ?? CONFIG_KEYS;
  const raw = new Map<ConfigKey, { value: unknown; source: Source }>();

  for (const k of keys) {
    const d = specOf(k).default;
    if (d !== undefined) raw.set(k, { value: d, source: { kind: 'default' } });
  }

  const explicit = input.configFile ?? (env.LONGHAUL_CONFIG || undefined);
  const file =
    explicit !== undefined ? resolve(cwd, explicit) : existsSync(resolve(cwd, CONFIG_FILE)) ? resolve(cwd, CONFIG_FILE) : undefined;
  if (file !== undefined) {
    for (const [key, value] of Object.entries(readFile(file))) {
      if (key === '$schema') continue;
      if (!(key in SPECS)) throw unknownKey(key, file);
      raw.set(key as ConfigKey, { value, source: { kind: 'file', path: file } });
    }
  }

  const byEnv = new Map(CONFIG_KEYS.map((k) => [envOf(k), k]));
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('LONGHAUL_') || OTHER_ENV.has(name) || value === undefined || value === '') continue;
    const key = byEnv.get(name);
    if (key === undefined)
      throw configError(
        `unknown environment variable ${name}; the options are ${CONFIG_KEYS.map(envOf).join(', ')} (and ${[...OTHER_ENV].join(', ')})`,
      );
    raw.set(key, { value, source: { kind: 'env', name } });
  }

  for (const [key, value] of Object.entries(input.flags ?? {})) {
    if (value === undefined) continue;
    if (!(key in SPECS)) throw unknownKey(key, 'the options');
    const k = key as ConfigKey;
    raw.set(k, { value: Array.isArray(value) ? value.join(',') : value, source: { kind: 'flag', name: flagOf(k) } });
  }

  const values: Config = {};
  const sources: Partial<Record<ConfigKey, Source>> = {};
  for (const [key, { value, source }] of raw) {
    const r = specOf(key).schema.parse(value);
    if (!r.ok) {
      const why = r.error;
      // A bad flag is a mistake on the command line (E_USAGE, docs/ERRORS.md); a bad value in
      // the file or the environment is E_CONFIG naming where it came from.
      if (source.kind === 'flag') throw new LonghaulError('E_USAGE', `${source.name} ${String(value)} is not valid: ${why}`);
      throw configError(`${key} = ${JSON.stringify(value)} (from ${describe(source)}) is not valid: ${why}`);
    }
    if (!keys.includes(key)) continue;
    (values as Record<string, unknown>)[key] = r.value;
    sources[key] = source;
  }
  return { values, sources, file };
}

/** The config file's JSON Schema (docs/config.schema.json), generated from the same checks. */
export function configJsonSchema(): Record<string, unknown> {
  const properties = Object.fromEntries(CONFIG_KEYS.map((k) => [k, { description: SPECS[k].description, ...SPECS[k].schema.json }]));
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    properties: { $schema: { description: 'this schema, for editors', type: 'string' }, ...properties },
    additionalProperties: false,
    description: 'longhaul.config.json: options for the longhaul CLI; LONGHAUL_* variables and flags override them',
  };
}

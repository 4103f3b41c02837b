// The checks behind every option (config.ts): each parses a value from a flag, a LONGHAUL_*
// variable or the config file into what the engine takes, with one message saying what is
// allowed, and describes itself as JSON Schema (docs/config.schema.json). Hand-written rather
// than zod's: the CLI resolves its options on every start, and loading zod and building its
// forty schemas cost ~20 ms of a 1-byte `send` whose whole start-up budget is 80 ms
// (`npm run bench -- startup`); these few shapes are all the options need.

import { parseSize } from './common.js';

export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

export interface Check<T> {
  parse(value: unknown): Checked<T>;
  /** This check as a JSON Schema fragment (what the config file may hold). */
  readonly json: Record<string, unknown>;
}

/** The parsed type of a check. */
export type Output<C> = C extends Check<infer T> ? T : never;

const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
const no = (error: string): Checked<never> => ({ ok: false, error });

function check<T>(json: Record<string, unknown>, parse: (value: unknown) => Checked<T>): Check<T> {
  return { parse, json };
}

const DIGITS = /^\s*\d+\s*$/;

/** An integer in min..max: a number, or a string of digits (flags and variables are strings). */
export function intIn(min: number, max: number): Check<number> {
  const error = `expected an integer in ${min}..${max}`;
  return check(
    {
      anyOf: [
        { type: 'integer', minimum: min, maximum: max },
        { type: 'string', pattern: DIGITS.source },
      ],
    },
    (v) => {
      const n = typeof v === 'number' ? v : typeof v === 'string' && DIGITS.test(v) ? Number(v) : NaN;
      return Number.isInteger(n) && n >= min && n <= max ? ok(n) : no(error);
    },
  );
}

/** A byte count in min..max: a number, or a size such as 500G (powers of 1024). */
export function sizeIn(min: number, max: number, example: string): Check<number> {
  const error = `expected a size such as ${example} (K, M, G, T are powers of 1024)${min > 0 || max < Number.MAX_SAFE_INTEGER ? ` in ${fmtSize(min)}..${fmtSize(max)}` : ''}`;
  const pattern = /^\s*\d+(\.\d+)?\s*[kmgtpKMGTP]?(i?[bB])?\s*$/;
  return check(
    {
      anyOf: [
        { type: 'integer', minimum: min, maximum: max },
        { type: 'string', pattern: pattern.source },
      ],
    },
    (v) => {
      let n = NaN;
      if (typeof v === 'number') n = v;
      else if (typeof v === 'string' && pattern.test(v)) n = parseSize(v);
      return Number.isInteger(n) && n >= min && n <= max ? ok(n) : no(error);
    },
  );
}

function fmtSize(n: number): string {
  if (n >= Number.MAX_SAFE_INTEGER) return 'unlimited';
  for (const [u, s] of [
    ['T', 2 ** 40],
    ['G', 2 ** 30],
    ['M', 2 ** 20],
    ['K', 2 ** 10],
  ] as const)
    if (n >= s && n % s === 0) return `${n / s}${u}`;
  return String(n);
}

/** One of a few words. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T): Check<T[number]> {
  const error = `expected one of ${values.join(', ')}`;
  return check({ type: 'string', enum: [...values] }, (v) =>
    typeof v === 'string' && (values as readonly string[]).includes(v) ? ok(v as T[number]) : no(error),
  );
}

const TRUE_WORDS = ['true', '1', 'yes'];
const BOOL_WORDS = ['0', '1', 'true', 'false', 'yes', 'no'];

/** A switch: true or false, or one of the words a variable may hold. */
export const bool: Check<boolean> = check({ anyOf: [{ type: 'boolean' }, { type: 'string', enum: BOOL_WORDS }] }, (v) =>
  typeof v === 'boolean'
    ? ok(v)
    : typeof v === 'string' && BOOL_WORDS.includes(v)
      ? ok(TRUE_WORDS.includes(v))
      : no('expected true or false'),
);

/** A non-empty string; `error` names what it is. */
export function nonEmpty(error: string): Check<string> {
  return check({ type: 'string', minLength: 1 }, (v) => (typeof v === 'string' && v.length > 0 ? ok(v) : no(error)));
}

/** A string matching `pattern`. */
export function matching(pattern: RegExp, error: string): Check<string> {
  return check({ type: 'string', pattern: pattern.source }, (v) => (typeof v === 'string' && pattern.test(v) ? ok(v) : no(error)));
}

/** A string `accept` takes (the schema says only "string": the rule is code, e.g. an address). */
export function stringWhere(accept: (v: string) => boolean, error: string): Check<string> {
  return check({ type: 'string' }, (v) => (typeof v === 'string' && accept(v) ? ok(v) : no(error)));
}

/** Any value of the JSON shape `json`, turned into a T by `convert` (which throws on a bad one). */
export function converted<T>(json: Record<string, unknown>, convert: (v: unknown) => T, error: string): Check<T> {
  return check(json, (v) => {
    try {
      return ok(convert(v));
    } catch {
      return no(error);
    }
  });
}

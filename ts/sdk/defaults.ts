// The engine's defaults and the bounds of every option, read once from the addon (core's
// `Default` impls of SendOptions, ServeOptions and GetOptions, and longhaul_core::limits): the
// SDK's checks and the CLI's config schema, its help and docs/config.schema.json read these,
// never a copy of the numbers. `send`'s retries are the SDK's own policy, so they are here too.
import { LonghaulError } from './errors.js';
import { native, type Binding } from './native.js';

export const DEFAULTS: Binding.BindingDefaults = native.defaults();
export const LIMITS: Binding.BindingLimits = DEFAULTS.limits;

/** `send`'s retries: how many (default, and the most one may ask for) and how long between them. */
export const RETRY = {
  retries: 3,
  maxRetries: 1000,
  /** Before the first retry, doubling each time up to `maxDelayMs`. */
  delayMs: 1000,
  maxDelayMs: 30_000,
  /** The most `retryDelayMs` may be: an hour. */
  maxDelayOptionMs: 3_600_000,
} as const;

/** Throws E_USAGE unless `v` (when given) is an integer within `bounds`. */
export function checkIn(name: string, v: number | undefined, bounds: Binding.BindingBounds): void {
  checkCount(name, v, bounds.min, bounds.max);
}

export function checkCount(name: string, v: number | undefined, min: number, max: number): void {
  if (v === undefined) return;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new LonghaulError('E_USAGE', `${name} must be an integer in ${min}..${max}, got ${v}`);
  }
}

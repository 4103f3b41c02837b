// Compiled by test/sdk-details.test.ts with skipLibCheck false: the shipped typings (the
// generated native/binding.d.cts and the SDK's dist/sdk/*.d.ts) must type-check as a user's
// strict project would check them, and LonghaulError.code must be the union of documented codes.
import type * as Binding from '../../native/binding.cjs';
import type { ErrorCode, LonghaulError } from '../../dist/sdk/index.js';

// A progress callback takes one BindingProgress (no leading error argument).
export const onProgress: Parameters<typeof Binding.send>[2] = (p: Binding.BindingProgress) => void p.bytesDone;

type Code = LonghaulError['code'];
export const closed: Code = 'E_CLOSED';
export const same: ErrorCode = closed;
// @ts-expect-error: not a documented code
export const bogus: Code = 'E_BOGUS';
// A union of literals, not `string`: `string` does not fit in it.
export const narrow: string extends Code ? false : true = true;

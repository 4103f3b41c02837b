// Errors the SDK and CLI raise. Every failure carries a stable `code` (see docs/ERRORS.md).

export class LonghaulError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LonghaulError';
    this.code = code;
  }
}

const CODED = /^(E_[A-Z_]+): ([\s\S]*)$/;

/** Turns an error thrown by the addon ("E_CODE: message") into a LonghaulError. */
export function fromNative(err: unknown): LonghaulError {
  if (err instanceof LonghaulError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const m = CODED.exec(message);
  return m ? new LonghaulError(m[1]!, m[2]!, { cause: err }) : new LonghaulError('E_INTERNAL', message, { cause: err });
}

/**
 * CLI exit status for each error code. Documented in docs/ERRORS.md; scripts may rely on it.
 */
export function exitCodeFor(code: string): number {
  switch (code) {
    case 'E_USAGE':
      return 2;
    case 'E_CONNECT':
    case 'E_NET':
    case 'E_PROTOCOL':
    case 'E_VERSION':
    case 'E_TIMEOUT':
      return 3;
    case 'E_NOT_FOUND':
    case 'E_SOURCE_CHANGED':
      return 4;
    case 'E_PATH_ESCAPE':
    case 'E_BAD_PATH':
    case 'E_DUPLICATE':
    case 'E_INDEX':
    case 'E_LIMIT':
    case 'E_AUTH':
    case 'E_BUSY':
      return 5;
    case 'E_IO':
    case 'E_NOSPACE':
    case 'E_CAPACITY':
      return 6;
    case 'E_CHECKSUM':
    case 'E_VERIFY':
      return 7;
    case 'E_CANCELLED':
      return 130;
    default:
      return 1;
  }
}

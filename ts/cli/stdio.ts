// A reader that goes away (`longhaul ls | head -1`, `send … | head -1`, a closed stderr) is not
// an error: what would have been written is dropped and the command ends as it would have (a
// transfer runs to its end) with its own exit status (docs/ERRORS.md). Without this, Node
// throws EPIPE from the stream with a stack trace, and a transfer dies with it. Kept apart from
// output.ts so that installing it loads nothing (no SDK, no addon) before the command is known.

/**
 * Installed once by main.ts, before any command writes; covers every command. Node makes
 * process.stdout and process.stderr when first used, and making one costs ~2 ms of start-up
 * that a quiet command never needs (`send -q` writes nothing): the handler goes on each stream
 * as it is made, not by making it here.
 */
export function dropOutputWhenReaderGone(): void {
  for (const name of ['stdout', 'stderr'] as const) {
    const made = Object.getOwnPropertyDescriptor(process, name);
    const make = made?.get;
    if (!make || !made.configurable) {
      guard(name, process[name]);
      continue;
    }
    let guarded = false;
    Object.defineProperty(process, name, {
      configurable: true,
      enumerable: made.enumerable,
      get() {
        const stream = make.call(process) as NodeJS.WriteStream;
        if (!guarded) {
          guarded = true;
          guard(name, stream);
        }
        return stream;
      },
    });
  }
}

function guard(name: string, stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
    // Anything else (a full disk under `readv … > FILE`) loses output the user asked for: fail.
    void import('./output.js').then(({ fail, LonghaulError }) =>
      fail(new LonghaulError('E_IO', `writing to ${name}: ${err.message}`, { cause: err }), false),
    );
  });
}

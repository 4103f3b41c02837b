// A reader that goes away (`longhaul ls | head -1`, `send … | head -1`, a closed stderr) is not
// an error: what would have been written is dropped and the command ends as it would have (a
// transfer runs to its end) with its own exit status (docs/ERRORS.md). Without this, Node
// throws EPIPE from the stream with a stack trace, and a transfer dies with it. Kept apart from
// output.ts so that installing it loads nothing (no SDK, no addon) before the command is known.

/** Installed once by main.ts, before any command writes; covers every command. */
export function dropOutputWhenReaderGone(): void {
  for (const [name, stream] of [
    ['stdout', process.stdout],
    ['stderr', process.stderr],
  ] as const) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
      // Anything else (a full disk under `readv … > FILE`) loses output the user asked for: fail.
      void import('./output.js').then(({ fail, LonghaulError }) =>
        fail(new LonghaulError('E_IO', `writing to ${name}: ${err.message}`, { cause: err }), false),
      );
    });
  }
}

// What `get` and `copy` share: run the transfer with progress, then print what the receiving
// side reported.
import type { Config } from '../sdk/config.js';
import type { ReceiveSummary } from '../sdk/index.js';
import { settings } from './options.js';
import { fail, printReceived, reporterFor, silentReporter, type OutputFlags, type Reporter } from './output.js';

export async function receiveAction(
  command: 'get' | 'copy',
  o: Record<string, unknown> & OutputFlags,
  run: (c: Config, reporter: Reporter, signal: AbortSignal) => Promise<ReceiveSummary>,
): Promise<void> {
  const json = Boolean(o.json);
  let reporter: Reporter = silentReporter;
  try {
    const c = settings(o, command).values;
    reporter = await reporterFor(json, Boolean(o.quiet), false);
    const abort = new AbortController();
    process.once('SIGINT', () => abort.abort());
    const s = await run(c, reporter, abort.signal);
    reporter.done(s);
    printReceived(s, command === 'get' ? 'received' : 'copied', o);
  } catch (err) {
    reporter.done();
    fail(err, json);
  }
}

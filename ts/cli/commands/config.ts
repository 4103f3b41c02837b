// `longhaul config`: the effective configuration and where each value came from, or its JSON Schema.
import { CONFIG_FILE, CONFIG_KEYS, configJsonSchema, describeSource } from '../../sdk/config.js';
import { settings, withConfig } from '../options.js';
import { fail } from '../output.js';
import { program } from '../program.js';

export function register(): void {
  withConfig(
    program
      .command('config')
      .description('print the effective configuration and where each value came from (default, file, environment, flag)')
      .option('--schema', "print the config file's JSON Schema instead")
      .option('--json', 'one JSON object: key -> { value, source }'),
    'config',
  ).action((o: Record<string, unknown> & { schema?: boolean; json?: boolean }) => {
    const json = Boolean(o.json);
    if (o.schema) {
      process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
      return;
    }
    try {
      const { values, sources, file } = settings(o, 'config');
      if (json) {
        const out = Object.fromEntries(
          CONFIG_KEYS.map((k) => [
            k,
            { value: values[k] ?? null, source: sources[k] ? describeSource(sources[k]) : 'unset (engine default)' },
          ]),
        );
        process.stdout.write(`${JSON.stringify({ file: file ?? null, options: out })}\n`);
        return;
      }
      process.stdout.write(`config file: ${file ?? `none (no --config, LONGHAUL_CONFIG or ./${CONFIG_FILE})`}\n`);
      const width = Math.max(...CONFIG_KEYS.map((k) => k.length));
      for (const k of CONFIG_KEYS) {
        const v = values[k];
        const shown = v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v);
        process.stdout.write(
          `${k.padEnd(width)}  ${shown.padEnd(24)} ${sources[k] ? describeSource(sources[k]) : 'unset (engine default)'}\n`,
        );
      }
    } catch (err) {
      fail(err, json);
    }
  });
}

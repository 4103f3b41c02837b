// The options a command takes: its config keys (as flags, with --config) resolved through the
// SDK's config (defaults < config file < LONGHAUL_* < flags), and the parsers of plain flags.
import { Command, InvalidArgumentError, Option } from 'commander';

import {
  CONFIG_FILE,
  CONFIG_KEYS,
  flagOf,
  keysFor,
  resolveConfig,
  specOf,
  type Command as CommandName,
  type Config,
  type ConfigKey,
} from '../sdk/config.js';
import { parseSize } from '../sdk/index.js';

export function intArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in ${min}..${max}`);
    return n;
  };
}

/** `4M`, `512K`, `1048576`, `500G`. */
export function sizeArg(v: string): number {
  try {
    return parseSize(v);
  } catch {
    throw new InvalidArgumentError('expected a size such as 4M, 500G or 1048576');
  }
}

/** Repeatable flags (`--peer-rate A=1G --peer-rate B=2G`) collect into a list. */
function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** Adds the config options a command takes, and `--config`. Their values are read with `settings`. */
export function withConfig(cmd: Command, command: CommandName | 'config'): Command {
  for (const k of command === 'config' ? CONFIG_KEYS : keysFor(command)) {
    const spec = specOf(k);
    if (spec.arg === '') {
      // Both forms, so that neither sets a value unless given (the file and environment still count).
      // -c as rsync's.
      const flags = k === 'checksum' ? `-c, ${flagOf(k)}` : flagOf(k);
      cmd.addOption(new Option(flags, `${spec.description} (default ${String(spec.default)})`));
      cmd.addOption(new Option(flagOf(k).replace(/^--/, '--no-')).hideHelp());
      continue;
    }
    const o = new Option(
      `${flagOf(k)} <${spec.arg}>`,
      `${spec.description}${spec.default !== undefined ? ` (default ${String(spec.default)})` : ''}`,
    );
    if (k === 'peerRates' || k === 'copyTo') o.argParser(collect);
    cmd.addOption(o);
  }
  return cmd.option('--config <file>', `config file (default: LONGHAUL_CONFIG, else ./${CONFIG_FILE} if present)`);
}

/** The name commander stores a flag's value under. */
function attributeOf(key: ConfigKey): string {
  return flagOf(key)
    .slice(2)
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The command's effective options: defaults < config file < LONGHAUL_* < flags. */
export function settings(o: Record<string, unknown>, command: CommandName | 'config'): ReturnType<typeof resolveConfig> {
  const keys = command === 'config' ? CONFIG_KEYS : keysFor(command);
  const flags = Object.fromEntries(keys.map((k) => [k, o[attributeOf(k)]]));
  return resolveConfig({ flags, configFile: o.config as string | undefined, keys });
}

/** What a client command authenticates and checks the node with: the token and TLS settings. */
export function credentials(c: Config): { tokenFile?: string; tlsPin?: string; tlsCa?: string } {
  return { tokenFile: c.tokenFile, tlsPin: c.tlsPin, tlsCa: c.tlsCa };
}

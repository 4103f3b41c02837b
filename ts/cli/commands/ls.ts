// `longhaul ls`: list a directory (or name a file) on a node.
import { ls } from '../../sdk/index.js';
import { credentials, settings, withConfig } from '../options.js';
import { fail, type OutputFlags } from '../output.js';
import { program } from '../program.js';

export function register(): void {
  withConfig(
    program
      .command('ls')
      .description('list a directory (or name a file) on a node')
      .argument('<target>', 'HOST[:PORT][/PATH]')
      .option('--json', 'one JSON object per entry'),
    'ls',
  ).action(async (target: string, o: Record<string, unknown> & OutputFlags) => {
    try {
      const c = settings(o, 'ls').values;
      for (const e of await ls(target, credentials(c))) {
        if (o.json) process.stdout.write(`${JSON.stringify({ ...e, mtime: e.mtime.toISOString() })}\n`);
        else
          process.stdout.write(
            `${e.kind.charAt(0)} ${e.mode.toString(8).padStart(4, '0')} ${String(e.size).padStart(14)} ${e.mtime.toISOString()} ${e.name}${e.kind === 'dir' ? '/' : ''}\n`,
          );
      }
    } catch (err) {
      fail(err, Boolean(o.json));
    }
  });
}

// `longhaul doctor`: probe each fast path and limit the engine depends on.
import { doctor } from '../../sdk/index.js';
import { program } from '../program.js';

export function register(): void {
  program
    .command('doctor')
    .description('probe each fast path and limit (sendfile, O_TMPFILE, mlock, pinning, NUMA, socket buffers, open files)')
    .option('--json', 'print one JSON object per check')
    .action((o: { json?: boolean }) => {
      for (const c of doctor()) {
        if (o.json) process.stdout.write(`${JSON.stringify(c)}\n`);
        else process.stdout.write(`${c.ok ? 'ok ' : 'OFF'} ${c.name.padEnd(15)} ${c.detail}${c.advice ? `\n    -> ${c.advice}` : ''}\n`);
      }
    });
}

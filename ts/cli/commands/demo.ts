// `longhaul demo`: a sample tree sent to a node on 127.0.0.1 and verified, on one machine.
import { join } from 'node:path';

import { compareTrees, LonghaulError, send, serve, type SendSummary } from '../../sdk/index.js';
import * as fmt from '../format.js';
import { intArg, settings, sizeArg, withConfig } from '../options.js';
import { fail, printSummary, reporterFor } from '../output.js';
import { program } from '../program.js';

export function register(): void {
  withConfig(
    program
      .command('demo')
      .description('generate a sample tree, start a node on 127.0.0.1, send the tree to it and verify it')
      .option('--files <n>', 'small files in the sample tree', intArg(0, 10_000_000), 5000)
      .option('--big <size>', 'size of the large file', sizeArg, 256 << 20)
      .option('--dir <dir>', 'where to make the temporary directory (default: the OS temp dir)')
      .option('--keep', 'keep the generated tree and the received copy')
      .option('--report <file>', 'write an HTML report of the transfer to FILE')
      .option('--json', 'print progress and the summary as JSON lines'),
    'demo',
  ).action(
    async (o: Record<string, unknown> & { files: number; big: number; dir?: string; keep?: boolean; report?: string; json?: boolean }) => {
      const json = Boolean(o.json);
      let streams: number | 'auto' | undefined;
      try {
        streams = settings(o, 'demo').values.streams;
      } catch (err) {
        fail(err, json);
      }
      // Loaded here, not with the other commands: node:crypto alone is ~3 ms of everyone's start-up.
      const [{ makeDemoDir, makeSampleTree, removeDir }, { randomBytes }] = await Promise.all([
        import('../sample-tree.js'),
        import('node:crypto'),
      ]);
      const work = await makeDemoDir(o.dir);
      const log = (s: string): void => {
        if (!json) process.stderr.write(`${s}\n`);
      };
      try {
        const src = join(work, 'sample');
        log(`generating a sample tree in ${src}: one ${fmt.bytes(o.big)} file and ${fmt.count(o.files)} small files`);
        await makeSampleTree(src, { files: o.files, bigBytes: o.big });
        // A fresh random token for this run: the demo shows the authenticated handshake too.
        const token = randomBytes(24).toString('base64');
        const node = await serve({ root: join(work, 'node-root'), host: '127.0.0.1', port: 0, token });
        log(`node listening on ${node.url}, root ${node.root}`);
        const reporter = await reporterFor(json, false, false);
        const { ProgressRecorder, writeReport } = await import('../report.js');
        const recorder = new ProgressRecorder();
        let s: SendSummary;
        try {
          s = await send(src, `${node.url}/received`, {
            token,
            streams,
            onProgress: (p) => {
              recorder.add(p);
              reporter.progress(p);
            },
          });
        } finally {
          reporter.done();
          await node.close();
        }
        const diffs = await compareTrees(src, join(node.root, 'received', 'sample'));
        if (diffs.length > 0) {
          throw new LonghaulError(
            'E_VERIFY',
            `the received tree differs from the source in ${diffs.length} places, first: ${JSON.stringify(diffs[0])}`,
          );
        }
        if (o.report)
          writeReport(o.report, {
            summary: s,
            source: src,
            target: `${node.url}/received`,
            progress: recorder.samples(),
            command: process.argv.slice(2).join(' '),
          });
        // The demo shows what the engine did: the detail lines too.
        printSummary(s, { json, verbose: true }, { verified: true, ...(o.report ? { report: o.report } : {}) });
        log(
          `verified: ${fmt.count(s.files)} files, ${fmt.count(s.dirs)} dirs and ${fmt.count(s.symlinks)} symlinks identical (bytes, modes, mtimes, link targets)`,
        );
        if (o.keep) log(`kept ${work}`);
      } catch (err) {
        fail(err, json);
      } finally {
        if (!o.keep) await removeDir(work);
      }
    },
  );
}

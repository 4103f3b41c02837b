// What `send --delete` and `send --dry-run` print: the deleted line (and with -v its paths), and
// a dry run's plan with rsync-like marks (`+` new, `>` update, `-` delete).
import type { Deleted, SendPlan } from '../sdk/index.js';
import * as fmt from './format.js';

/** `deleted: N files, M dirs (X)`, and with -v each path (the first 1,000) marked `-`. */
export function deletedLines(d: Deleted | null, verbose: boolean): string[] {
  if (!d) return [];
  const lines = [`deleted: ${fmt.plural(d.files, 'file')}, ${fmt.plural(d.dirs, 'dir')} (${fmt.bytes(d.bytes)})`];
  if (verbose)
    lines.push(
      ...listed(
        d.paths.map((p) => `- ${p}`),
        d.files + d.dirs,
      ),
    );
  return lines;
}

/**
 * Marked paths, and how many more there were than the list holds. The node names them (files
 * anyone there could have made): a control character is shown as `\xNN`, never sent to the
 * terminal, where an escape sequence could rewrite what the user reads.
 */
function listed(lines: string[], total: number): string[] {
  const shown = lines.map((l) => l.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
  return total > shown.length ? [...shown, `... and ${fmt.count(total - shown.length)} more`] : shown;
}

/** The plan's summary line, and with -v its paths marked as rsync's --itemize-changes would. */
export function planLines(p: SendPlan, verbose: boolean): string[] {
  const parts = [
    `would send ${fmt.plural(p.newFiles, 'file')} (${fmt.bytes(p.newBytes)})`,
    `update ${fmt.count(p.changedFiles)} (${fmt.bytes(p.changedBytes)})`,
  ];
  if (p.deleted)
    parts.push(
      `delete ${fmt.count(p.deleted.files + p.deleted.dirs)} (${fmt.plural(p.deleted.files, 'file')}, ${fmt.plural(p.deleted.dirs, 'dir')}, ${fmt.bytes(p.deleted.bytes)})`,
    );
  const lines = [
    `dry run: ${parts.join(', ')}; ${fmt.count(p.unchangedFiles)} unchanged (${fmt.bytes(p.unchangedBytes)}); nothing was written`,
  ];
  if (verbose) {
    lines.push(
      ...listed(
        p.newPaths.map((x) => `+ ${x}`),
        p.newFiles,
      ),
    );
    lines.push(
      ...listed(
        p.changedPaths.map((x) => `> ${x}`),
        p.changedFiles,
      ),
    );
    if (p.deleted)
      lines.push(
        ...listed(
          p.deleted.paths.map((x) => `- ${x}`),
          p.deleted.files + p.deleted.dirs,
        ),
      );
  }
  return lines;
}

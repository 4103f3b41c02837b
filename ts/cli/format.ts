// Human-readable figures for the CLI.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function bytes(n: number): string {
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n.toFixed(0) : n.toFixed(n >= 100 ? 0 : 1)} ${UNITS[i]}`;
}

export function rate(bytesPerSecond: number): string {
  return `${bytes(bytesPerSecond)}/s`;
}

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return m < 60 ? `${m}m${String(s).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

export function plural(n: number, noun: string): string {
  return `${count(n)} ${noun}${n === 1 ? '' : 's'}`;
}

/** The widest line the CLI prints: a long summary or path wraps rather than running past a 120-column terminal. */
export const WIDTH = 120;

/**
 * `line` in lines of at most `width` columns, broken at spaces (a word longer than that, such as
 * a deep path, is cut), the lines after the first indented by two spaces.
 */
export function wrap(line: string, width = WIDTH): string[] {
  if (line.length <= width) return [line];
  const out: string[] = [];
  let cur = '';
  for (let word of line.split(' ')) {
    for (;;) {
      const head = out.length === 0 && cur === '' ? '' : '  ';
      const room = width - (cur === '' ? head.length : cur.length + 1);
      if (word.length <= room) {
        cur = cur === '' ? head + word : `${cur} ${word}`;
        break;
      }
      if (cur !== '' && word.length <= width - 2) {
        out.push(cur);
        cur = '';
        continue;
      }
      // Longer than a line: cut it, filling what is left of this one.
      const cut = Math.max(room, 1);
      cur = cur === '' ? head + word.slice(0, cut) : `${cur} ${word.slice(0, cut)}`;
      out.push(cur);
      cur = '';
      word = word.slice(cut);
      if (word === '') break;
    }
  }
  if (cur !== '') out.push(cur);
  return out;
}

// The service recipe in docs/USAGE.md works as written (issue 35, item 7): `systemd-analyze
// verify` accepts its unit with no warning, every path the unit names is one the recipe makes
// (with the owner and mode the unit's user needs), LimitMEMLOCK= covers the memory budget,
// and the recipe's config and token file start a real node. The recipe's shell steps are not
// run: useradd and /etc are not a test's to touch.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

import { describe, expect, it } from 'vitest';

import { parseSize } from '../dist/sdk/index.js';
import { DEFAULTS } from '../dist/sdk/defaults.js';
import { CLI, finish, freshDir } from './helpers.js';

const ROOT = join(import.meta.dirname, '..');
const HEADING = '## Run a node as a service (systemd)\n';
// systemd's own units (sysinit.target and the rest the unit pulls in), which verify loads
// from under --root.
const SYSTEMD_UNITS = '/usr/lib/systemd/system';

function section(): { recipe: string; unit: string; unitPath: string } {
  const doc = readFileSync(join(ROOT, 'docs', 'USAGE.md'), 'utf8');
  const at = doc.indexOf(HEADING);
  expect(at, `docs/USAGE.md has "${HEADING.trim()}"`).toBeGreaterThanOrEqual(0);
  const end = doc.indexOf('\n## ', at + HEADING.length);
  const text = doc.slice(at, end < 0 ? undefined : end);
  const recipe = /```sh\n([\s\S]*?)```/.exec(text)?.[1];
  const unit = /```ini\n([\s\S]*?)```/.exec(text)?.[1];
  expect(recipe, 'a ```sh block: the recipe').toBeTruthy();
  expect(unit, 'an ```ini block: the unit').toBeTruthy();
  // The unit's first line names where it goes.
  const unitPath = /^# (\/\S+\.service)\n/.exec(unit!)?.[1];
  expect(unitPath, 'the unit starts with "# /etc/systemd/system/NAME.service"').toBeTruthy();
  return { recipe: recipe!, unit: unit!, unitPath: unitPath! };
}

/** The [Service] section's settings (a key set twice keeps its last value, as systemd does). */
function service(unit: string): Map<string, string> {
  const body = unit.split(/^\[Service\]\n/m)[1]!.split(/^\[/m)[0]!;
  const out = new Map<string, string>();
  for (const line of body.split('\n')) {
    const m = /^(\w+)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** Commands of the recipe, one a line, comments and continuation-free. */
const commands = (recipe: string): string[] =>
  recipe
    .replace(/<<'EOF'\n[\s\S]*?\nEOF\n/g, "<<'EOF'\n")
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

/** The paths the recipe makes: install's last argument, a redirection's target, npm's bin under --prefix. */
function made(recipe: string): Set<string> {
  const bin = Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin)[0]!;
  const out = new Set<string>();
  for (const cmd of commands(recipe)) {
    for (const part of cmd.split(/&&|\|/).map((p) => p.trim())) {
      const words = part.split(/\s+/);
      if (words[0] === 'install') out.add(words.at(-1)!);
      const redirect = /(?:^|\s)>\s*(\/\S+)/.exec(part);
      if (redirect) out.add(redirect[1]!);
      const prefix = /^npm install -g --prefix (\/\S+) /.exec(part);
      if (prefix) out.add(`${prefix[1]}/bin/${bin}`);
    }
  }
  return out;
}

const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0 && existsSync(SYSTEMD_UNITS);

describe('issue 35: the service recipe in docs/USAGE.md', () => {
  it.skipIf(!hasSystemdAnalyze)('systemd-analyze verify accepts the unit with no warning', () => {
    const { unit, unitPath } = section();
    const s = service(unit);
    const root = freshDir('unit-root');
    // The tree the recipe leaves: the unit where it says, the program where ExecStart looks
    // (the real CLI, executable), and systemd's own units.
    mkdirSync(join(root, dirname(unitPath)), { recursive: true });
    writeFileSync(join(root, unitPath), unit);
    const exe = s.get('ExecStart')!.split(' ')[0]!;
    mkdirSync(join(root, dirname(exe)), { recursive: true });
    copyFileSync(CLI, join(root, exe));
    chmodSync(join(root, exe), 0o755);
    cpSync(SYSTEMD_UNITS, join(root, SYSTEMD_UNITS), { recursive: true });
    const name = unitPath.split('/').at(-1)!;
    const verify = (): { status: number | null; stderr: string } =>
      spawnSync('systemd-analyze', ['verify', `--root=${root}`, name], { encoding: 'utf8' });
    const r = verify();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);

    // The check can fail: an unknown key is a warning on stderr (status 0), a missing program an error.
    writeFileSync(join(root, unitPath), unit.replace('[Service]\n', '[Service]\nLimitMEMLOCKS=1G\n'));
    expect(verify().stderr).toMatch(/Unknown key 'LimitMEMLOCKS'/);
    writeFileSync(join(root, unitPath), unit.replace(exe, `${exe}-missing`));
    expect(verify()).toMatchObject({ status: 1, stderr: expect.stringMatching(/is not executable/) });
  });

  it('every path the unit names is one the recipe makes, with the owner and mode its user needs', () => {
    const { recipe, unit, unitPath } = section();
    const s = service(unit);
    const paths = new Set<string>([unitPath]);
    for (const key of ['ExecStart', 'Environment', 'ReadWritePaths'])
      for (const m of (s.get(key) ?? '').matchAll(/(?:^|[\s=])(\/[\w./-]+)/g)) paths.add(m[1]!);
    const exe = s.get('ExecStart')!.split(' ')[0]!;
    expect(paths).toContain(exe);
    expect([...paths].length).toBeGreaterThanOrEqual(5);
    const created = made(recipe);
    for (const p of paths) expect(created, `the recipe makes ${p}`).toContain(p);

    // The user and group the unit runs as are the ones the recipe adds.
    const user = s.get('User')!;
    const group = s.get('Group') ?? user;
    const cmds = commands(recipe);
    expect(cmds.find((c) => c.startsWith('useradd '))).toMatch(new RegExp(`^useradd --system .*--user-group .* ${user}$`));
    // The token: root's, readable by the unit's group and nobody else.
    const token = /LONGHAUL_TOKEN_FILE=(\S+)/.exec(s.get('Environment')!)![1]!;
    expect(cmds).toContain(`install -o root -g ${group} -m 0640 /dev/null ${token}`);
    // The writable root is the user's, and is the config's root.
    const rw = s.get('ReadWritePaths')!;
    expect(cmds).toContain(`install -d -o ${user} -g ${group} -m 0750 ${rw}`);
    const config = JSON.parse(/<<'EOF'\n([\s\S]*?)\nEOF\n/.exec(recipe)![1]!) as { root: string; memory?: string };
    expect(config.root).toBe(rw);
    expect(s.get('ExecStart')).toContain(`--config ${[...created].find((p) => p.endsWith('.json'))}`);

    // Every pool the node locks fits in the limit: the pools are bounded by the memory budget,
    // the push pool alone is poolBuffers x maxBlock.
    const memlock = parseSize(s.get('LimitMEMLOCK')!);
    expect(memlock).toBeGreaterThanOrEqual(config.memory ? parseSize(config.memory) : DEFAULTS.serve.memory);
    expect(memlock).toBeGreaterThanOrEqual(DEFAULTS.serve.poolBuffers * DEFAULTS.serve.maxBlock);
    // Options that would stop Node.js (V8's JIT needs writable code pages) stay out.
    expect(s.has('MemoryDenyWriteExecute')).toBe(false);
  });

  it("the recipe's config and a 0640 token file start a node as the unit would", async () => {
    const { recipe, unit } = section();
    const s = service(unit);
    const dir = freshDir('unit-config');
    // The recipe's config, moved to a scratch root and free ports.
    const config = JSON.parse(/<<'EOF'\n([\s\S]*?)\nEOF\n/.exec(recipe)![1]!) as Record<string, unknown>;
    Object.assign(config, { root: join(dir, 'root'), listen: '127.0.0.1:0', metrics: '127.0.0.1:0' });
    mkdirSync(join(dir, 'root'), { mode: 0o750 });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config), { mode: 0o640 });
    writeFileSync(join(dir, 'token'), 'a token for the service test 0123456789\n', { mode: 0o640 });
    const args = s.get('ExecStart')!.split(' ').slice(1);
    expect(args.slice(0, 2)).toEqual(['serve', '--config']);
    // The unit's environment: the token from the file it names, nothing inherited that says otherwise.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LONGHAUL_') || k === 'LONGHAUL_TEST_DIR'));
    const child = spawn(process.execPath, [CLI, ...args.slice(0, 2), join(dir, 'config.json'), ...args.slice(3), '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...env, LONGHAUL_TOKEN_FILE: join(dir, 'token') },
    });
    const done = finish(child);
    const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
    const listening = JSON.parse(first) as { metrics: string };
    expect(listening).toMatchObject({ type: 'listening', auth: 'token', root: join(dir, 'root') });
    // An answer from the metrics port also means the node is past its start-up and has its
    // signal handlers (a SIGTERM before them would kill it where it stands).
    expect((await fetch(listening.metrics)).status).toBe(200);
    child.kill('SIGTERM');
    const r = await done;
    expect(r.stderr).not.toMatch(/"level":(50|60)/);
    expect(r.status).toBe(0);
  });
});

// `npm test` needs, besides Node and Rust: chromium (the HTML report is rendered headless) and
// tmux (the progress bar is read off a terminal screen) from Debian's packages, and cargo-fuzz
// (the fuzz targets run for a minute each) from crates.io. This installs whichever is missing
// when it can (root with apt-get; cargo install), and otherwise says what to run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const hasCargoFuzz = spawnSync('cargo', ['fuzz', '--version'], { stdio: 'ignore' }).status === 0;
if (!hasCargoFuzz) {
  console.error('installing cargo-fuzz for the fuzz targets: cargo install cargo-fuzz --locked');
  if (spawnSync('cargo', ['install', 'cargo-fuzz', '--locked'], { stdio: ['ignore', 'inherit', 'inherit'] }).status !== 0) {
    console.error('could not install cargo-fuzz; run `cargo install cargo-fuzz --locked` by hand');
    process.exit(1);
  }
}

const tools = [
  { bin: '/usr/bin/chromium', pkg: 'chromium' },
  { bin: '/usr/bin/tmux', pkg: 'tmux' },
];
const missing = tools.filter((t) => !existsSync(t.bin)).map((t) => t.pkg);
if (missing.length === 0) process.exit(0);

const cmd = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
  console.error(`the tests need ${missing.join(' and ')}: run \`sudo ${cmd}\` first`);
  process.exit(1);
}
console.error(`installing ${missing.join(' and ')} for the tests: ${cmd}`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const apt = (args) => spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env }).status === 0;
const install = ['install', '-y', '--no-install-recommends', ...missing];
if (!apt(install) && !(apt(['update']) && apt(install))) {
  console.error(`could not install ${missing.join(' and ')}; run \`${cmd}\` by hand`);
  process.exit(1);
}

#!/usr/bin/env node
// Set-up shared by `npm test`, `npm run demo` and `npm run bench`: installs the npm packages
// when node_modules is missing or older than the lockfile, and the Debian packages the lab
// needs when their programs are missing. It uses only Node's standard library, because it
// runs before the npm packages exist.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Each Debian package with the files whose presence shows it is installed. */
const osPackages = [
  { name: 'redis-server', files: ['/usr/bin/redis-server', '/usr/bin/redis-cli'] },
  { name: 'openssh-server', files: ['/usr/sbin/sshd'] },
  { name: 'openssh-client', files: ['/usr/bin/ssh', '/usr/bin/ssh-keygen'] },
  { name: 'procps', files: ['/usr/bin/pkill'] },
  // Real QEMU VMs in the lab: the emulator (SeaBIOS comes with it), and the assembler and
  // linker that build the lab's guest kernel.
  { name: 'qemu-system-x86', files: ['/usr/bin/qemu-system-x86_64'] },
  { name: 'binutils', files: ['/usr/bin/as', '/usr/bin/ld'] },
  // The dashboard's browser test (driven by playwright-core), and the checks of the deployment
  // files: `docker-compose config` parses the compose file, `systemd-analyze verify` the unit.
  { name: 'chromium', files: ['/usr/bin/chromium'] },
  { name: 'docker-compose', files: ['/usr/bin/docker-compose'] },
  { name: 'systemd', files: ['/usr/bin/systemd-analyze'] },
];

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`ferry setup: '${command} ${args.join(' ')}' failed with exit code ${result.status}.`);
    process.exit(result.status ?? 1);
  }
}

function ensureNpmPackages() {
  const lockfile = join(root, 'package-lock.json');
  const installedMarker = join(root, 'node_modules', '.package-lock.json');
  const upToDate =
    existsSync(installedMarker) && statSync(installedMarker).mtimeMs >= statSync(lockfile).mtimeMs;
  if (!upToDate) {
    console.log('ferry setup: installing npm packages with npm ci');
    run('npm', ['ci', '--no-audit', '--no-fund']);
  }
}

function ensureOsPackages() {
  const missing = osPackages.filter((pkg) => pkg.files.some((file) => !existsSync(file))).map((p) => p.name);
  if (missing.length === 0) return;

  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    console.error(
      `ferry setup: missing OS packages: ${missing.join(', ')}.\n` +
        `Install them as root, for example: sudo apt-get install -y ${missing.join(' ')}`,
    );
    process.exit(1);
  }
  console.log(`ferry setup: installing OS packages: ${missing.join(', ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', ...missing],
  ]) {
    const result = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (result.status !== 0) {
      console.error(`ferry setup: 'apt-get ${args.join(' ')}' failed with exit code ${result.status}.`);
      process.exit(result.status ?? 1);
    }
  }
}

ensureOsPackages();
ensureNpmPackages();

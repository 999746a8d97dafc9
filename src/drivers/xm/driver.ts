import { FerryError } from '../../errors.js';
import { inspectDetached, startDetached, waitDetached, type DetachedExit } from '../detached.js';
import type { HostShell, HypervisorDriver, VmObservation } from '../driver.js';
import { parseBridges, parseXmInfo, parseXmList, parseXmListLong, vmStateOf } from './parse.js';

/** Returns the argument vector that runs `command args...` on the host, through `sudo -n` if configured. */
function privileged(shell: HostShell, command: string, args: string[]): string[] {
  return shell.host.sudo ? ['sudo', '-n', '--', command, ...args] : [command, ...args];
}

async function xm(shell: HostShell, args: string[], timeoutMs = 30_000) {
  return shell.run(privileged(shell, shell.host.commands.xm, args), { timeoutMs });
}

function commandError(
  shell: HostShell,
  what: string,
  output: { stderr: string; code: number | null },
): FerryError {
  const detail = output.stderr.trim().split('\n').slice(-3).join(' ') || `exit code ${output.code}`;
  return new FerryError('COMMAND_FAILED', `${what} failed on ${shell.host.name}: ${detail}`, {
    context: { host: shell.host.name },
  });
}

/**
 * Driver for Xen's xend toolstack through `xm`. The migration stream goes from the source's
 * xend into the tunnel port on the source's loopback (`xm migrate --live --port=P VM
 * localhost`), and the tunnel carries it to the target's relocation port.
 */
export const xmDriver: HypervisorDriver = {
  name: 'xm',

  async locate(shell, vm): Promise<VmObservation> {
    const output = await xm(shell, ['list']);
    if (output.code !== 0) throw commandError(shell, 'xm list', output);
    const rows = parseXmList(output.stdout);
    const migrating = rows.find((row) => row.name === `migrating-${vm}`);
    if (migrating !== undefined) {
      return { host: shell.host.name, state: 'migrating', id: migrating.id, detail: migrating.state };
    }
    const row = rows.find((candidate) => candidate.name === vm);
    if (row === undefined) return { host: shell.host.name, state: 'absent' };
    return { host: shell.host.name, state: vmStateOf(row.state), id: row.id, detail: row.state };
  },

  async migrationsInFlight(shell) {
    const output = await xm(shell, ['list']);
    if (output.code !== 0) throw commandError(shell, 'xm list', output);
    // An outgoing migration renames the domain; an incoming one is a paused domain until the
    // stream ends. A domain paused by an operator looks the same, so it is reported too.
    return parseXmList(output.stdout)
      .filter((row) => row.name.startsWith('migrating-') || vmStateOf(row.state) === 'paused')
      .map((row) =>
        row.name.startsWith('migrating-')
          ? `${row.name} (outgoing)`
          : `${row.name} (paused, possibly incoming)`,
      );
  },

  async describe(shell, vm) {
    const output = await xm(shell, ['list', '-l', vm]);
    if (output.code !== 0) {
      if (/does not exist/.test(output.stderr)) {
        throw new FerryError('VM_NOT_FOUND', `VM '${vm}' does not exist on ${shell.host.name}.`, {
          context: { vm, host: shell.host.name },
        });
      }
      throw commandError(shell, 'xm list -l', output);
    }
    return parseXmListLong(output.stdout);
  },

  async capacity(shell) {
    const output = await xm(shell, ['info']);
    if (output.code !== 0) throw commandError(shell, 'xm info', output);
    return parseXmInfo(output.stdout);
  },

  async missingBridges(shell, bridges) {
    if (bridges.length === 0) return [];
    const output = await shell.run([shell.host.commands.ip, '-o', 'link', 'show', 'type', 'bridge']);
    if (output.code !== 0) throw commandError(shell, 'ip link show type bridge', output);
    const present = new Set(parseBridges(output.stdout));
    return bridges.filter((bridge) => !present.has(bridge));
  },

  async missingStoragePaths(shell, paths) {
    if (paths.length === 0) return [];
    const output = await shell.run([shell.host.commands.ls, '-d', '--', ...paths]);
    const present = new Set(output.stdout.split('\n').filter((line) => line !== ''));
    return paths.filter((path) => !present.has(path));
  },

  async prepareTarget(target) {
    // xend listens on its relocation port all the time; there is nothing to start or undo.
    // The log's last line marks where this migration's entries will begin.
    const before = await readXendLog(target);
    return {
      port: target.host.relocationPort,
      discard: async () => undefined,
      diagnose: async () => diagnoseXendLog(target, linesAfter(await readXendLog(target), before)),
    };
  },

  async startMigration(source, vm, tunnelPort, options) {
    // xm prints no progress and has no cancel: the tunnel counts bytes, and cutting the tunnel
    // is the only way to end a running migration. The command runs detached, so it outlives a
    // lost SSH connection and a later attempt can see whether it still runs.
    const dir = migrationDir(source, options.jobId);
    const args = ['migrate', '--live', `--port=${tunnelPort}`, vm, 'localhost'];
    await startDetached(source, dir, privileged(source, source.host.commands.xm, args));
    const wait = waitDetached(source, dir, {
      timeoutMs: options.timeoutMs,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    return { done: wait.then((exit) => checkXmExit(source, vm, exit)) };
  },

  async migrationRunning(source, jobId) {
    return (await inspectDetached(source, migrationDir(source, jobId))) === 'running';
  },
};

function migrationDir(shell: HostShell, jobId: string): string {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(jobId)) {
    throw new FerryError('INVALID_REQUEST', `Job id '${jobId}' cannot name a folder on ${shell.host.name}.`);
  }
  return `${shell.host.workDir.replace(/\/+$/, '')}/${jobId}`;
}

function checkXmExit(source: HostShell, vm: string, exit: DetachedExit): void {
  if (exit.code === 0) return;
  const detail =
    exit.stderr.split('\n').slice(-3).join(' ') ||
    (exit.code === null ? 'no exit status' : `exit code ${exit.code}`);
  const context = { vm, host: source.host.name };
  // xm reports failures only as text; this is the one place that text becomes an error code.
  if (/can't connect: Connection refused/.test(exit.stderr)) {
    throw new FerryError('RELOCATION_REFUSED', `xm migrate could not connect to the tunnel: ${detail}`, {
      context,
    });
  }
  if (/does not exist/.test(exit.stderr)) {
    throw new FerryError('VM_NOT_FOUND', `VM '${vm}' does not exist on ${source.host.name}.`, { context });
  }
  throw new FerryError('MIGRATE_FAILED', `xm migrate failed on ${source.host.name}: ${detail}`, { context });
}

async function readXendLog(shell: HostShell): Promise<string[]> {
  const output = await shell.run([shell.host.commands.tail, '-n', '200', '--', shell.host.xendLog], {
    timeoutMs: 30_000,
  });
  // A missing or unreadable log only means there is nothing to diagnose from.
  return output.code === 0 ? output.stdout.split('\n').filter((line) => line !== '') : [];
}

/** Returns the lines of `after` that follow the last line of `before`. */
function linesAfter(after: string[], before: string[]): string[] {
  const last = before[before.length - 1];
  if (last === undefined) return after;
  const index = after.lastIndexOf(last);
  return index === -1 ? after : after.slice(index + 1);
}

function diagnoseXendLog(target: HostShell, lines: string[]): FerryError | undefined {
  const context = { host: target.host.name };
  const rejected = lines.find((line) => line.includes('Rejected connection from'));
  if (rejected !== undefined) {
    return new FerryError(
      'RELOCATION_REJECTED',
      `${target.host.name}'s xend rejected the migration stream (${rejected.replace(/^.*Rejected/, 'Rejected')}). The stream arrives from 127.0.0.1 through the tunnel: allow ^localhost$ in xend-relocation-hosts-allow.`,
      { context },
    );
  }
  if (lines.some((line) => line.includes('Domain construction failed'))) {
    const balloon = lines.find((line) => /balloon/i.test(line));
    const code = balloon === undefined ? 'DOMAIN_CONSTRUCTION_FAILED' : 'TARGET_MEMORY_SHORT';
    const reason = balloon === undefined ? '' : ` (${balloon.replace(/^\[[^\]]*\]\s*/, '')})`;
    return new FerryError(code, `${target.host.name}'s xend could not construct the domain${reason}.`, {
      context,
    });
  }
  return undefined;
}

import { FerryError } from '../../errors.js';
import type { HostShell, HypervisorDriver, VmDescription, VmObservation } from '../driver.js';
import { startQemuMigration } from './migration.js';
import {
  connectMonitor,
  monitorPath,
  qemuSettings,
  vmStateOf,
  withMonitor,
  type QemuMigrationInfo,
  type QemuStatus,
} from './monitor.js';
import { parseMemInfo } from './parse.js';
import { prepareIncomingQemu } from './target.js';

/** Lists the sockets that match a glob pattern, one a line; the pattern is an argument, never code. */
const listSocketsScript =
  'IFS=; for socket in $1; do [ -S "$socket" ] && printf "%s\\n" "$socket"; done; exit 0';

function commandError(shell: HostShell, action: string, output: { stderr: string; code: number | null }) {
  const detail = output.stderr.trim().split('\n').slice(-3).join(' ') || `exit code ${output.code}`;
  return new FerryError('COMMAND_FAILED', `${action} failed on ${shell.host.name}: ${detail}`, {
    context: { host: shell.host.name },
  });
}

/**
 * Driver for QEMU/KVM hosts without a management daemon. ferry talks QMP to each VM's monitor
 * socket through its pooled SSH connection to the host, starts the target's incoming QEMU
 * with the host's `qemu.incomingCommand`, and runs the migration into the tunnel with
 * `migrate`, watching its progress, convergence and stalls (see migration.ts).
 */
export const qemuDriver: HypervisorDriver = {
  name: 'qemu',

  async locate(shell, vm): Promise<VmObservation> {
    const host = shell.host.name;
    return withMonitor<VmObservation>(
      shell,
      vm,
      async (qmp) => {
        const status = await qmp.execute<QemuStatus>('query-status');
        const migration = await qmp.execute<QemuMigrationInfo>('query-migrate');
        return { host, ...vmStateOf(status.status, migration.status) };
      },
      () => ({ host, state: 'absent' }),
    );
  },

  async migrationsInFlight(shell) {
    const template = qemuSettings(shell).monitorSocket;
    const output = await shell.run(['sh', '-c', listSocketsScript, 'ferry-list', monitorPath(shell, '*')], {
      timeoutMs: 30_000,
    });
    if (output.code !== 0) throw commandError(shell, 'Listing the QEMU monitor sockets', output);
    const [before = '', after = ''] = template.split('{vm}');
    const found: string[] = [];
    for (const path of output.stdout.split('\n').filter((line) => line !== '')) {
      if (!path.startsWith(before) || !path.endsWith(after)) continue;
      const vm = path.slice(before.length, path.length - after.length);
      const observation = await qemuDriver.locate(shell, vm).catch(() => undefined);
      if (observation?.state === 'migrating') found.push(`${vm} (outgoing)`);
      if (observation?.detail?.startsWith('inmigrate') === true) found.push(`${vm} (incoming)`);
    }
    return found;
  },

  async describe(shell, vm): Promise<VmDescription> {
    const qmp = await connectMonitor(shell, vm);
    if (qmp === undefined) {
      throw new FerryError('VM_NOT_FOUND', `VM '${vm}' has no QEMU monitor on ${shell.host.name}.`, {
        context: { vm, host: shell.host.name },
      });
    }
    try {
      const memory = await qmp.execute<{ 'base-memory': number; 'plugged-memory'?: number }>(
        'query-memory-size-summary',
      );
      const cpus = await qmp.execute<unknown[]>('query-cpus-fast');
      const blocks = await qmp.execute<Array<{ inserted?: { file?: string } }>>('query-block');
      const storagePaths = blocks
        .map((block) => block.inserted?.file)
        .filter((file): file is string => file !== undefined && file.startsWith('/'));
      return {
        name: vm,
        memoryMiB: Math.ceil((memory['base-memory'] + (memory['plugged-memory'] ?? 0)) / (1024 * 1024)),
        vcpus: cpus.length,
        storagePaths,
        // NOTE: QMP does not name the bridge a tap device is attached to (the host's ifup script
        // chooses it), so bridges are not checked for QEMU VMs.
        bridges: [],
      };
    } finally {
      qmp.close();
    }
  },

  async capacity(shell) {
    const output = await shell.run([shell.host.commands.tail, '-n', '+1', '/proc/meminfo'], {
      timeoutMs: 30_000,
    });
    if (output.code !== 0) throw commandError(shell, 'Reading /proc/meminfo', output);
    return parseMemInfo(output.stdout);
  },

  async missingBridges() {
    return [];
  },

  async missingStoragePaths(shell, paths) {
    if (paths.length === 0) return [];
    const output = await shell.run([shell.host.commands.ls, '-d', '--', ...paths]);
    const present = new Set(output.stdout.split('\n').filter((line) => line !== ''));
    return paths.filter((path) => !present.has(path));
  },

  async prepareTarget(target, vm) {
    return prepareIncomingQemu(target, vm);
  },

  async startMigration(source, vm, tunnelPort, options) {
    return startQemuMigration(source, qemuSettings(source), vm, tunnelPort, options);
  },
};

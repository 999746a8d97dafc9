/**
 * Reaching a VM's QMP monitor on a host. Each VM's QEMU listens on a unix socket whose path
 * the host's `qemu.monitorSocket` template gives. ferry opens an SSH streamlocal channel to it,
 * so nothing but sshd is needed on the host. QEMU serves one QMP client per socket at a time,
 * so every user of a monitor closes it as soon as it is done.
 */

import type { QemuHostSettings } from '../../config/inventory.js';
import { FerryError, isFerryError } from '../../errors.js';
import type { HostShell, VmState } from '../driver.js';
import { QmpClient } from './qmp.js';

/** Milliseconds a monitor gets to send its greeting, and to reply to each command. */
export const monitorTimeoutMs = 10_000;

/** Returns the host's QEMU settings, or throws INVALID_INVENTORY when its entry has none. */
export function qemuSettings(shell: HostShell): QemuHostSettings {
  const settings = shell.host.qemu;
  if (settings === undefined) {
    throw new FerryError(
      'INVALID_INVENTORY',
      `Host ${shell.host.name} has no 'qemu' section; the qemu driver needs its incomingCommand and monitorSocket.`,
      { context: { host: shell.host.name } },
    );
  }
  return settings;
}

/** Replaces every `{name}` in `template` with its value. */
export function fillTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => values[name] ?? whole);
}

export function monitorPath(shell: HostShell, vm: string): string {
  return fillTemplate(qemuSettings(shell).monitorSocket, { vm });
}

/**
 * Connects to the VM's monitor and negotiates QMP. Returns undefined when nothing listens at the
 * socket path, which means no QEMU of that VM runs on the host (a socket file left by a killed
 * QEMU refuses the connection in the same way).
 */
export async function connectMonitor(shell: HostShell, vm: string): Promise<QmpClient | undefined> {
  const path = monitorPath(shell, vm);
  if (shell.openUnixSocket === undefined) {
    throw new FerryError(
      'INVALID_CONFIG',
      `The qemu driver needs a host shell that can open unix sockets; the one for ${shell.host.name} cannot.`,
      { context: { host: shell.host.name } },
    );
  }
  let stream;
  try {
    stream = await shell.openUnixSocket(path);
  } catch (error) {
    if (isFerryError(error, 'TUNNEL_FAILED')) return undefined;
    throw error;
  }
  return QmpClient.open(stream, { host: shell.host.name, socketPath: path, timeoutMs: monitorTimeoutMs });
}

/** Runs `work` with the VM's monitor and closes it afterwards; `absent` when no QEMU runs. */
export async function withMonitor<T>(
  shell: HostShell,
  vm: string,
  work: (qmp: QmpClient) => Promise<T>,
  absent: () => T,
): Promise<T> {
  const qmp = await connectMonitor(shell, vm);
  if (qmp === undefined) return absent();
  try {
    return await work(qmp);
  } finally {
    qmp.close();
  }
}

/** QEMU's `query-status` reply (the fields ferry reads). */
export interface QemuStatus {
  status: string;
  running: boolean;
}

/** QEMU's `query-migrate` reply, the fields ferry reads; every field is absent before a migration. */
export interface QemuMigrationInfo {
  status?: string;
  'total-time'?: number;
  'expected-downtime'?: number;
  downtime?: number;
  'error-desc'?: string;
  ram?: {
    transferred?: number;
    remaining?: number;
    total?: number;
    'dirty-pages-rate'?: number;
    'dirty-sync-count'?: number;
    mbps?: number;
  };
}

/** Migration statuses in which an outgoing migration still runs (QEMU's MigrationStatus). */
export const activeMigrationStatuses = new Set([
  'setup',
  'active',
  'pre-switchover',
  'device',
  'wait-unplug',
  'cancelling',
  'postcopy-active',
  'postcopy-paused',
  'postcopy-recover',
  'colo',
]);

/** Meaning of each QEMU run state (QEMU's RunState enumeration) in ferry's terms. */
const vmStates: Record<string, { state: VmState; detail: string }> = {
  running: { state: 'running', detail: 'running' },
  colo: { state: 'running', detail: 'colo' },
  // An incoming QEMU that waits for or receives a migration stream.
  inmigrate: { state: 'paused', detail: 'inmigrate: waiting for an incoming migration' },
  // The VM has moved out; only the QEMU process that held it is left.
  postmigrate: { state: 'absent', detail: 'postmigrate: QEMU left behind after the VM moved out' },
  // The source during the final stop-and-copy of a migration.
  'finish-migrate': { state: 'migrating', detail: 'finish-migrate' },
  paused: { state: 'paused', detail: 'paused' },
  prelaunch: { state: 'paused', detail: 'prelaunch' },
  suspended: { state: 'paused', detail: 'suspended' },
  debug: { state: 'paused', detail: 'debug' },
  'save-vm': { state: 'paused', detail: 'save-vm' },
  'restore-vm': { state: 'paused', detail: 'restore-vm' },
  shutdown: { state: 'stopped', detail: 'shutdown' },
  'internal-error': { state: 'stopped', detail: 'internal-error' },
  'io-error': { state: 'stopped', detail: 'io-error' },
  watchdog: { state: 'stopped', detail: 'watchdog' },
  'guest-panicked': { state: 'stopped', detail: 'guest-panicked' },
};

/**
 * Maps QEMU's run state, and the status of its outgoing migration, to a VM state. A running VM
 * with an outgoing migration in flight is `migrating`.
 */
export function vmStateOf(
  runState: string,
  migrationStatus: string | undefined,
): { state: VmState; detail: string } {
  const known = vmStates[runState] ?? { state: 'stopped', detail: runState };
  if (
    known.state === 'running' &&
    migrationStatus !== undefined &&
    activeMigrationStatuses.has(migrationStatus)
  ) {
    return { state: 'migrating', detail: `running, outgoing migration ${migrationStatus}` };
  }
  return known;
}

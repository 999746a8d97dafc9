/**
 * The target side of a QEMU migration: an incoming QEMU started for this one migration, which
 * listens on a loopback port of the target that the driver picks. QEMU has no fixed relocation
 * port, so each migration gets its own.
 */

import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { FerryError, isFerryError } from '../../errors.js';
import type { HostShell, PreparedTarget } from '../driver.js';
import {
  connectMonitor,
  fillTemplate,
  monitorPath,
  qemuSettings,
  withMonitor,
  type QemuStatus,
} from './monitor.js';
import { QmpCommandError, type QmpClient } from './qmp.js';

/** Ports tried for `migrate-incoming` before giving up with TUNNEL_PORT_TAKEN. */
const maxPortTries = 10;

/** Time the incoming command's QEMU gets to open its monitor socket, in ms. */
const monitorWaitMs = 15_000;

/** Time an ended QEMU gets to release its monitor socket, in ms. */
const exitWaitMs = 10_000;

/** An incoming QEMU on the target, waiting for the migration stream on `port`. */
export class IncomingQemu implements PreparedTarget {
  constructor(
    readonly shell: HostShell,
    readonly vm: string,
    readonly port: number,
  ) {}

  /**
   * Ends the incoming QEMU if it still waits for or receives a stream (`inmigrate`). A QEMU in
   * any other state is left alone: once the VM runs there, ending it would lose the VM.
   */
  async discard(): Promise<void> {
    await endIncomingQemu(this.shell, this.vm);
  }

  /**
   * Waits until the VM runs on the target after the source completed its side. A target QEMU
   * started with -S stays paused after the stream, and is resumed with `cont`.
   */
  async waitRunning(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'unknown';
    while (Date.now() < deadline) {
      const status = await withMonitor(
        this.shell,
        this.vm,
        async (qmp) => {
          const reply = await qmp.execute<QemuStatus>('query-status');
          if (reply.status === 'paused') await qmp.execute('cont');
          return reply.status;
        },
        () => 'absent',
      );
      if (status === 'running') return;
      last = status;
      if (status !== 'inmigrate' && status !== 'paused') break;
      await sleep(100);
    }
    throw new FerryError(
      'MIGRATE_FAILED',
      `The source completed the migration, but VM '${this.vm}' is ${last} on ${this.shell.host.name}, not running.`,
      { context: { vm: this.vm, host: this.shell.host.name, state: last } },
    );
  }
}

/**
 * Starts the VM's incoming QEMU on the target with the host's incomingCommand, then has it
 * listen on a free loopback port (`migrate-incoming`). A QEMU left in `postmigrate` by an
 * earlier migration of this VM away from the target still owns the monitor socket, so it is
 * ended first.
 */
export async function prepareIncomingQemu(target: HostShell, vm: string): Promise<IncomingQemu> {
  const settings = qemuSettings(target);
  const monitor = monitorPath(target, vm);
  await clearLeftoverQemu(target, vm);

  const argv = settings.incomingCommand.map((arg) => fillTemplate(arg, { vm, monitor }));
  const output = await target.run(argv, { timeoutMs: 60_000 });
  if (output.code !== 0) {
    const detail = output.stderr.trim().split('\n').slice(-3).join(' ') || `exit code ${output.code}`;
    throw new FerryError(
      'COMMAND_FAILED',
      `The incoming QEMU command failed on ${target.host.name}: ${detail}`,
      { context: { vm, host: target.host.name } },
    );
  }

  const qmp = await waitForMonitor(target, vm);
  try {
    const status = await qmp.execute<QemuStatus>('query-status');
    if (status.status !== 'inmigrate') {
      throw new FerryError(
        'COMMAND_FAILED',
        `The incoming QEMU of VM '${vm}' on ${target.host.name} is ${status.status}, not inmigrate; its command must start QEMU with -incoming defer.`,
        { context: { vm, host: target.host.name } },
      );
    }
    const port = await listenIncoming(qmp, target, vm, settings.incomingPorts);
    return new IncomingQemu(target, vm, port);
  } catch (error) {
    // The monitor serves one client: this one must close before endIncomingQemu connects.
    qmp.close();
    await endIncomingQemu(target, vm).catch(() => undefined);
    throw error;
  } finally {
    qmp.close();
  }
}

/** Ends the VM's QEMU on the host when it is `inmigrate`, and waits until its socket is gone. */
export async function endIncomingQemu(shell: HostShell, vm: string): Promise<void> {
  const ended = await withMonitor(
    shell,
    vm,
    async (qmp) => {
      const status = await qmp.execute<QemuStatus>('query-status');
      if (status.status !== 'inmigrate') return false;
      await quit(qmp);
      return true;
    },
    () => false,
  );
  if (ended) await waitUntilGone(shell, vm);
}

async function clearLeftoverQemu(target: HostShell, vm: string): Promise<void> {
  const status = await withMonitor(
    target,
    vm,
    async (qmp) => {
      const reply = await qmp.execute<QemuStatus>('query-status');
      if (reply.status === 'postmigrate') await quit(qmp);
      return reply.status;
    },
    () => undefined,
  );
  if (status === undefined) return;
  if (status !== 'postmigrate') {
    throw new FerryError(
      'VM_ON_TARGET',
      `A QEMU of VM '${vm}' already runs on ${target.host.name} (status ${status}).`,
      { context: { vm, host: target.host.name, state: status } },
    );
  }
  await waitUntilGone(target, vm);
}

/** Sends `quit`; QEMU may close the connection before its reply arrives. */
async function quit(qmp: QmpClient): Promise<void> {
  await qmp.execute('quit').catch((error: unknown) => {
    if (!isFerryError(error, 'MONITOR_UNAVAILABLE')) throw error;
  });
}

async function waitForMonitor(target: HostShell, vm: string): Promise<QmpClient> {
  const deadline = Date.now() + monitorWaitMs;
  for (;;) {
    const qmp = await connectMonitor(target, vm);
    if (qmp !== undefined) return qmp;
    if (Date.now() > deadline) {
      throw new FerryError(
        'COMMAND_FAILED',
        `The incoming QEMU of VM '${vm}' on ${target.host.name} did not open its monitor ${monitorPath(target, vm)} within ${monitorWaitMs} ms.`,
        { context: { vm, host: target.host.name } },
      );
    }
    await sleep(100);
  }
}

async function waitUntilGone(shell: HostShell, vm: string): Promise<void> {
  const deadline = Date.now() + exitWaitMs;
  while (Date.now() < deadline) {
    const qmp = await connectMonitor(shell, vm).catch((error: unknown) => {
      // A QEMU busy exiting may accept the connection without greeting.
      if (isFerryError(error, 'MONITOR_UNAVAILABLE')) return 'busy' as const;
      throw error;
    });
    if (qmp === undefined) return;
    if (qmp !== 'busy') qmp.close();
    await sleep(100);
  }
  throw new FerryError(
    'COMMAND_FAILED',
    `The QEMU of VM '${vm}' on ${shell.host.name} did not exit within ${exitWaitMs} ms of 'quit'.`,
    { context: { vm, host: shell.host.name } },
  );
}

/**
 * Has the incoming QEMU listen on a port picked at random from `range`. QEMU reports a port in
 * use only as text, so "Address already in use" is matched here, and another port is tried.
 */
async function listenIncoming(
  qmp: QmpClient,
  target: HostShell,
  vm: string,
  range: [number, number],
): Promise<number> {
  const tried: number[] = [];
  for (let attempt = 0; attempt < maxPortTries; attempt += 1) {
    const port = randomInt(range[0], range[1] + 1);
    tried.push(port);
    try {
      await qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
      return port;
    } catch (error) {
      if (error instanceof QmpCommandError && /address already in use/i.test(error.description)) continue;
      if (error instanceof QmpCommandError) {
        throw new FerryError(
          'COMMAND_FAILED',
          `migrate-incoming failed on ${target.host.name}: ${error.description}`,
          { context: { vm, host: target.host.name }, cause: error },
        );
      }
      throw error;
    }
  }
  throw new FerryError(
    'TUNNEL_PORT_TAKEN',
    `Every port tried for the incoming migration of VM '${vm}' on ${target.host.name} was in use (${tried.join(', ')}).`,
    { context: { vm, host: target.host.name } },
  );
}

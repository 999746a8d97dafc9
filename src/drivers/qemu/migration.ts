/**
 * One outgoing QEMU migration, from `migrate` on the source's monitor to the VM running on the
 * target. It polls `query-migrate` on the source and raises the downtime limit when the
 * migration does not converge. It cancels the migration with `migrate_cancel` when it stalls or
 * cannot converge. After any failure it ends the target's incoming QEMU, so the VM is left
 * running on the source alone.
 *
 * INVARIANTS
 * - The source monitor connection is held from start to the end of `done`, and closed then,
 *   because QEMU serves one QMP client per socket and reconciliation reads it next.
 * - The target's QEMU is ended only while it is `inmigrate`: a target that runs the VM is
 *   never touched.
 */

import { setTimeout as sleep } from 'node:timers/promises';

import type { QemuHostSettings } from '../../config/inventory.js';
import { FerryError } from '../../errors.js';
import type {
  DriverProgress,
  HostShell,
  MigrationSummary,
  RunningMigration,
  StartMigrationOptions,
} from '../driver.js';
import { ConvergencePolicy, type ConvergenceAction } from './convergence.js';
import { connectMonitor, type QemuMigrationInfo, type QemuStatus } from './monitor.js';
import type { QmpClient } from './qmp.js';
import { IncomingQemu } from './target.js';

/** How often the source is asked for the migration's status, in ms. */
const pollIntervalMs = 200;

/** Time the target gets to run the VM after the source completed, in ms. */
const switchOverWaitMs = 30_000;

/** Time the source gets to resume the VM after a failed or cancelled migration, in ms. */
const resumeWaitMs = 10_000;

const bytesPerMiB = 1024 * 1024;

/**
 * Starts migrating `vm` from `source` into the tunnel on the source's loopback at `tunnelPort`.
 * Throws VM_NOT_FOUND or VM_NOT_RUNNING when the source has no running VM of that name.
 */
export async function startQemuMigration(
  source: HostShell,
  settings: QemuHostSettings,
  vm: string,
  tunnelPort: number,
  options: StartMigrationOptions,
): Promise<RunningMigration> {
  const context = { vm, host: source.host.name };
  const qmp = await connectMonitor(source, vm);
  if (qmp === undefined) {
    throw new FerryError('VM_NOT_FOUND', `VM '${vm}' has no QEMU monitor on ${source.host.name}.`, {
      context,
    });
  }
  try {
    const status = await qmp.execute<QemuStatus>('query-status');
    if (status.status !== 'running') {
      throw new FerryError(
        'VM_NOT_RUNNING',
        `VM '${vm}' is ${status.status} on ${source.host.name}; only a running VM can be live-migrated.`,
        { context },
      );
    }
    // max-bandwidth is in bytes per second; QEMU 7.2 treats 0 as no limit.
    await qmp.execute('migrate-set-parameters', {
      'max-bandwidth': settings.maxBandwidthMiBps * bytesPerMiB,
      'downtime-limit': settings.downtimeLimitMs,
    });
    await qmp.execute('migrate', { uri: `tcp:127.0.0.1:${tunnelPort}` });
  } catch (error) {
    qmp.close();
    throw error;
  }
  const target = options.prepared instanceof IncomingQemu ? options.prepared : undefined;
  return new QemuMigration(qmp, source, vm, settings, target, options.signal);
}

class QemuMigration implements RunningMigration {
  readonly done: Promise<void>;
  readonly #qmp: QmpClient;
  readonly #source: HostShell;
  readonly #vm: string;
  readonly #target: IncomingQemu | undefined;
  readonly #policy: ConvergencePolicy;
  #latest: QemuMigrationInfo = {};
  #summary: MigrationSummary | undefined;
  /** The reason ferry cancelled the migration, once it has. */
  #cancelReason: FerryError | undefined;

  constructor(
    qmp: QmpClient,
    source: HostShell,
    vm: string,
    settings: QemuHostSettings,
    target: IncomingQemu | undefined,
    signal: AbortSignal | undefined,
  ) {
    this.#qmp = qmp;
    this.#source = source;
    this.#vm = vm;
    this.#target = target;
    this.#policy = new ConvergencePolicy({
      downtimeLimitMs: settings.downtimeLimitMs,
      maxDowntimeLimitMs: settings.maxDowntimeLimitMs,
      downtimeSteps: settings.downtimeSteps,
      passesPerStep: settings.passesPerDowntimeStep,
      stallTimeoutMs: settings.stallTimeoutMs,
    });
    const onAbort = (): void => void this.abort().catch(() => undefined);
    signal?.addEventListener('abort', onAbort, { once: true });
    this.done = this.#watch().finally(() => {
      signal?.removeEventListener('abort', onAbort);
      this.#qmp.close();
    });
  }

  async progress(): Promise<DriverProgress | undefined> {
    const ram = this.#latest.ram;
    if (ram === undefined) return undefined;
    return {
      ...(ram.transferred === undefined ? {} : { transferredBytes: ram.transferred }),
      ...(ram.remaining === undefined ? {} : { remainingBytes: ram.remaining }),
      ...(ram.total === undefined ? {} : { totalBytes: ram.total }),
      ...(ram['dirty-pages-rate'] === undefined ? {} : { dirtyPagesRate: ram['dirty-pages-rate'] }),
      ...(this.#latest['expected-downtime'] === undefined
        ? {}
        : { expectedDowntimeMs: this.#latest['expected-downtime'] }),
      downtimeLimitMs: this.#policy.downtimeLimitMs,
    };
  }

  /** Cancels the migration on the source (`migrate_cancel`); `done` then rejects. Idempotent. */
  async abort(): Promise<void> {
    await this.#cancel(
      new FerryError('MIGRATE_FAILED', `The migration of VM '${this.#vm}' was cancelled on request.`, {
        context: { vm: this.#vm, host: this.#source.host.name },
      }),
    );
  }

  summary(): MigrationSummary | undefined {
    return this.#summary;
  }

  async #cancel(reason: FerryError): Promise<void> {
    if (this.#cancelReason !== undefined || this.#qmp.closed) return;
    this.#cancelReason = reason;
    await this.#qmp.execute('migrate_cancel');
  }

  async #watch(): Promise<void> {
    try {
      await this.#pollUntilCompleted();
    } catch (error) {
      await this.#cleanUpAfterFailure();
      throw error;
    }
    await this.#confirmSwitchOver();
  }

  async #pollUntilCompleted(): Promise<void> {
    for (;;) {
      const info = await this.#qmp.execute<QemuMigrationInfo>('query-migrate');
      this.#latest = info;
      switch (info.status) {
        case 'completed':
          this.#summary = {
            ...(info.ram?.transferred === undefined ? {} : { transferredBytes: info.ram.transferred }),
            ...(info.downtime === undefined ? {} : { downtimeMs: info.downtime }),
          };
          return;
        case 'failed':
          throw new FerryError(
            'MIGRATE_FAILED',
            `QEMU on ${this.#source.host.name} reports the migration of VM '${this.#vm}' failed: ${info['error-desc'] ?? 'no reason given'}.`,
            { context: { vm: this.#vm, host: this.#source.host.name } },
          );
        case 'cancelled':
          throw (
            this.#cancelReason ??
            new FerryError(
              'MIGRATE_FAILED',
              `The migration of VM '${this.#vm}' was cancelled on ${this.#source.host.name} by someone other than ferry.`,
              { context: { vm: this.#vm, host: this.#source.host.name } },
            )
          );
        case 'active':
          await this.#apply(
            this.#policy.observe({
              atMs: performance.now(),
              transferredBytes: info.ram?.transferred ?? 0,
              passes: info.ram?.['dirty-sync-count'] ?? 0,
            }),
          );
          break;
        default:
          // setup, device, pre-switchover, cancelling: short transitions that need no decision.
          break;
      }
      await sleep(pollIntervalMs);
    }
  }

  async #apply(action: ConvergenceAction): Promise<void> {
    const context = { vm: this.#vm, host: this.#source.host.name };
    if (action.kind === 'raise-downtime') {
      await this.#qmp.execute('migrate-set-parameters', { 'downtime-limit': action.downtimeLimitMs });
    } else if (action.kind === 'give-up' && action.reason === 'stalled') {
      await this.#cancel(
        new FerryError(
          'MIGRATION_STALLED',
          `The migration of VM '${this.#vm}' stalled (${action.detail}) and was cancelled; the VM stays on ${this.#source.host.name}.`,
          { context },
        ),
      );
    } else if (action.kind === 'give-up') {
      await this.#cancel(
        new FerryError(
          'MIGRATION_NOT_CONVERGING',
          `The migration of VM '${this.#vm}' did not converge (${action.detail}) and was cancelled; the VM stays on ${this.#source.host.name}. Raise the host's maxBandwidthMiBps or maxDowntimeLimitMs, or migrate when the VM is less busy.`,
          { context },
        ),
      );
    }
  }

  /** Waits for the state that ends a migration: source `postmigrate`, target `running`. */
  async #confirmSwitchOver(): Promise<void> {
    const deadline = Date.now() + switchOverWaitMs;
    let status = await this.#qmp.execute<QemuStatus>('query-status');
    while (status.status === 'finish-migrate' && Date.now() < deadline) {
      await sleep(50);
      status = await this.#qmp.execute<QemuStatus>('query-status');
    }
    if (status.status !== 'postmigrate') {
      throw new FerryError(
        'MIGRATE_FAILED',
        `QEMU on ${this.#source.host.name} completed the migration of VM '${this.#vm}' but is ${status.status}, not postmigrate.`,
        { context: { vm: this.#vm, host: this.#source.host.name, state: status.status } },
      );
    }
    await this.#target?.waitRunning(Math.max(1000, deadline - Date.now()));
  }

  /**
   * Waits for the source to resume the VM (QEMU does so after a failed or cancelled migration
   * of a running VM), then ends the target's incoming QEMU. Failures here are left for
   * reconciliation to see: the migration's own error is the one to report.
   */
  async #cleanUpAfterFailure(): Promise<void> {
    const deadline = Date.now() + resumeWaitMs;
    while (Date.now() < deadline && !this.#qmp.closed) {
      const status = await this.#qmp.execute<QemuStatus>('query-status').catch(() => undefined);
      const migration = await this.#qmp.execute<QemuMigrationInfo>('query-migrate').catch(() => undefined);
      const settled = migration?.status !== 'cancelling';
      if (status?.status === 'running' && settled) break;
      await sleep(100);
    }
    // A failed discard is retried by the migration steps, which also log it.
    await this.#target?.discard().catch(() => undefined);
  }
}

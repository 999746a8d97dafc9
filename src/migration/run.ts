import type { Logger } from 'pino';

import type { HostConfig, Inventory } from '../config/inventory.js';
import { driverFor, type HostShell, type PreparedTarget, type RunningMigration } from '../drivers/index.js';
import { FerryError, coerceError, isFerryError } from '../errors.js';
import type { MigrationRequest } from '../jobs/request.js';
import type { SshConnection } from '../ssh/connection.js';
import type { SshLease, SshPool } from '../ssh/pool.js';
import type {
  MigrationPhase,
  MigrationProgress,
  MigrationStatus,
  ObservedPlacement,
  TunnelMode,
} from '../types.js';
import { abortable as abortWith } from '../locks/wait.js';
import { phaseTimeouts, withTimeout } from './phases.js';
import { checkTarget } from './preflight.js';
import { reconcile, type Decision } from './reconcile.js';
import { openTunnel, type OpenTunnel } from './tunnel.js';

/** Everything one attempt needs; built by the worker for each job it takes. */
export interface AttemptContext {
  jobId: string;
  request: MigrationRequest;
  inventory: Inventory;
  pool: SshPool;
  logger: Logger;
  reportProgress(progress: MigrationProgress): void;
  /** True when an earlier attempt of this job reached the migrate step. */
  migrateStartedBefore: boolean;
  /** Records, durably, that this attempt is about to start the migrate step. */
  markMigrateStarted(): Promise<void>;
  /**
   * Aborts the attempt: a cancel request, a lost lock lease, or a worker shutting down. Its
   * reason is a FerryError (CANCELLED, LEASE_LOST, WORKER_SHUTDOWN). The attempt stops what
   * can be stopped, reconciles, and reports what it observed.
   */
  signal?: AbortSignal;
  /** Returns true when the job was cancelled before this attempt; checked before migrating. */
  isCancelled?(): boolean;
  /** Aborts the migrate step when the tunnel or driver shows no progress for this long. Default 150 s. */
  noProgressTimeoutMs?: number;
}

/** Result of an attempt that did not throw. */
export interface AttemptOutcome {
  status: Extract<MigrationStatus, 'completed' | 'needs-attention' | 'cancelled'>;
  tunnel: TunnelMode;
  bytes?: number;
  /** Downtime of the final switch-over, in milliseconds, where the driver measures it. */
  downtimeMs?: number;
  phaseMs: Partial<Record<MigrationPhase, number>>;
  observed?: ObservedPlacement[];
  /** Reason a person must look (`needs-attention`), or the cause that stopped the attempt (`cancelled`). */
  error?: FerryError;
  /** True when the VM was already on the target and nothing was migrated. */
  alreadyDone?: boolean;
}

/** Default of AttemptContext.noProgressTimeoutMs: KubeVirt cancels after 150 s without progress. */
export const defaultNoProgressTimeoutMs = 150_000;

export function shellFor(connection: SshConnection, host: HostConfig): HostShell {
  return {
    host,
    run: async (argv, options) => {
      const output = await connection.exec(argv, {
        ...(options?.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
        ...(options?.signal === undefined ? {} : { signal: options.signal }),
      });
      return { stdout: output.stdout, stderr: output.stderr, code: output.code };
    },
    openUnixSocket: (path) => connection.openUnixSocket(path),
  };
}

/** Rejects with the signal's reason as soon as it aborts; without a signal, settles as `work` does. */
function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  return signal === undefined ? work : abortWith(work, signal);
}

function abortReason(signal: AbortSignal | undefined): FerryError | undefined {
  if (signal?.aborted !== true) return undefined;
  const reason: unknown = signal.reason;
  return isFerryError(reason) ? reason : new FerryError('CANCELLED', coerceError(reason).message);
}

/**
 * Runs one attempt of a migration: connect -> reconcile and pre-flight -> tunnel -> migrate
 * -> verify, with the tunnel closed on every path.
 *
 * It returns `completed` when the VM runs on the target only, also when an earlier attempt
 * had already moved it. It returns `cancelled` when a cancel stopped it with the VM on the
 * source, and `needs-attention` when the VM's placement is anything it cannot explain. It throws a
 * FerryError when the attempt failed with the VM on the source only, and the error's class
 * decides whether a retry is safe.
 */
export async function runMigrationAttempt(context: AttemptContext): Promise<AttemptOutcome> {
  const { request, inventory, pool, logger, signal } = context;
  const source = inventory.host(request.source);
  const target = inventory.host(request.target);
  const driver = driverFor(source);
  const tunnelMode = request.options.tunnel;
  const phaseMs: Partial<Record<MigrationPhase, number>> = {};
  let timeouts = phaseTimeouts(request.options.timeouts, undefined);

  const timed = async <T>(phase: MigrationPhase, timeoutMs: number, work: () => Promise<T>): Promise<T> => {
    context.reportProgress({ phase });
    logger.debug({ phase }, 'Phase started');
    const started = performance.now();
    try {
      // Verification runs even after an abort: it is how the attempt learns where the VM is.
      return await abortable(withTimeout(phase, timeoutMs, work()), phase === 'verify' ? undefined : signal);
    } finally {
      phaseMs[phase] = (phaseMs[phase] ?? 0) + Math.round(performance.now() - started);
    }
  };
  const outcome = (
    status: AttemptOutcome['status'],
    extra: Partial<AttemptOutcome> = {},
  ): AttemptOutcome => ({
    status,
    tunnel: tunnelMode,
    phaseMs,
    ...extra,
  });

  const leases = await timed('connect', timeouts.connectMs, () => acquireBoth(pool, source, target));
  let tunnel: OpenTunnel | undefined;
  let prepared: PreparedTarget | undefined;
  try {
    const sourceShell = shellFor(leases.source.connection, source);
    const targetShell = shellFor(leases.target.connection, target);
    const reconcileOptions = (migrateStartedBefore: boolean) => ({
      vm: request.vm,
      jobId: context.jobId,
      migrateStartedBefore,
      timeoutMs: timeouts.migrateMs,
      ...(signal === undefined ? {} : { signal }),
    });

    // Reconcile before the attempt: a migration this job started earlier may have moved the
    // VM already, or still be running detached on the source.
    const before = await timed('preflight', timeouts.migrateMs, () =>
      reconcile(driver, sourceShell, targetShell, reconcileOptions(context.migrateStartedBefore)),
    );
    const early = earlyOutcome(before.decision, request.vm);
    if (early !== undefined) {
      if (early.status === 'completed') {
        logger.info(
          { observed: before.observation.placements },
          'VM already runs on the target; nothing to migrate',
        );
      }
      return outcome(early.status, { observed: before.observation.placements, ...early.extra });
    }

    const description = await timed('preflight', timeouts.preflightMs, () =>
      checkTarget(driver, sourceShell, targetShell, request.vm),
    );
    timeouts = phaseTimeouts(request.options.timeouts, description.memoryMiB);

    tunnel = await timed('tunnel', timeouts.connectMs, async () => {
      prepared = await driver.prepareTarget(targetShell, request.vm, description);
      try {
        return await openTunnel(
          tunnelMode,
          leases.source.connection,
          leases.target.connection,
          source,
          target,
          prepared.port,
        );
      } catch (error) {
        // An incoming QEMU left waiting would look like a migration in flight to the next attempt.
        await discardTarget(prepared, logger);
        throw error;
      }
    });
    const openedTunnel = tunnel;
    logger.debug({ tunnelPort: openedTunnel.port, tunnel: tunnelMode }, 'Tunnel open');

    if (context.isCancelled?.() === true) {
      await discardTarget(prepared, logger);
      return outcome('cancelled', {
        observed: before.observation.placements,
        error: new FerryError(
          'CANCELLED',
          'Cancelled before this attempt migrated; the VM stays on the source.',
        ),
      });
    }
    await context.markMigrateStarted();
    let running: RunningMigration | undefined;
    const migrateError = await runMigrateStep(context, {
      timed,
      startMigration: async (migrateSignal) => {
        running = await driver.startMigration(sourceShell, request.vm, openedTunnel.port, {
          timeoutMs: timeouts.migrateMs,
          jobId: context.jobId,
          signal: migrateSignal,
          prepared,
        });
        return running;
      },
      tunnel: openedTunnel,
      migrateMs: timeouts.migrateMs,
    });
    const summary = running?.summary?.();
    const bytes = openedTunnel.bytes() ?? summary?.transferredBytes;
    const withBytes = {
      ...(bytes === undefined ? {} : { bytes }),
      ...(summary?.downtimeMs === undefined ? {} : { downtimeMs: summary.downtimeMs }),
    };

    // For drivers without a cancel (xm), closing the tunnel is what ends a running migration.
    await openedTunnel.close();
    tunnel = undefined;

    // Reconcile after the migrate step, whatever its result: only the hosts tell the truth.
    const after = await timed('verify', timeouts.migrateMs, () =>
      reconcile(driver, sourceShell, targetShell, { ...reconcileOptions(true), signal: undefined }),
    );
    const observed = after.observation.placements;
    if (after.decision.kind === 'done') {
      if (migrateError !== undefined) {
        logger.warn({ err: migrateError }, 'Migrate step failed, but the VM runs on the target only');
      }
      context.reportProgress({ phase: 'done', ...(bytes === undefined ? {} : { bytes }) });
      return outcome('completed', { observed, ...withBytes });
    }
    if (after.decision.kind === 'migrate') {
      // The VM runs on the source only: nothing moved, so the error's class decides a retry.
      await discardTarget(prepared, logger);
      const cancel = abortReason(signal);
      if (cancel?.code === 'CANCELLED') {
        return outcome('cancelled', { observed, error: cancel, ...withBytes });
      }
      const diagnosed = await prepared?.diagnose?.().catch(() => undefined);
      const error =
        diagnosed ??
        explainMigrateFailure(migrateError ?? cancel, openedTunnel, target) ??
        new FerryError(
          'VERIFY_FAILED',
          `The migrate step ended, but VM '${request.vm}' still runs on ${source.name}.`,
        );
      throw error.withContext({ observed });
    }
    const reason = after.decision.kind === 'attention' ? after.decision.reason : 'placement unclear';
    return outcome('needs-attention', {
      observed,
      error: new FerryError('VERIFY_FAILED', reason, {
        context: { vm: request.vm },
        ...(migrateError === undefined ? {} : { cause: migrateError }),
      }),
      ...withBytes,
    });
  } finally {
    if (tunnel !== undefined) {
      await tunnel.close().catch((error: unknown) => logger.warn({ err: error }, 'Tunnel close failed'));
    }
    leases.source.release();
    leases.target.release();
  }
}

/** Maps a decision made before migrating to the attempt's result, or undefined to go on. */
function earlyOutcome(
  decision: Decision,
  vm: string,
): { status: AttemptOutcome['status']; extra: Partial<AttemptOutcome> } | undefined {
  switch (decision.kind) {
    case 'migrate':
      return undefined;
    case 'done':
      return { status: 'completed', extra: { alreadyDone: true } };
    case 'reject':
      throw decision.error;
    case 'attention':
      return {
        status: 'needs-attention',
        extra: { error: new FerryError('VERIFY_FAILED', decision.reason, { context: { vm } }) },
      };
    case 'wait':
      return {
        status: 'needs-attention',
        extra: {
          error: new FerryError('MIGRATION_IN_FLIGHT', `A migration of VM '${vm}' is still in flight.`),
        },
      };
  }
}

interface MigrateStep {
  timed: <T>(phase: MigrationPhase, timeoutMs: number, work: () => Promise<T>) => Promise<T>;
  startMigration(signal: AbortSignal): Promise<RunningMigration>;
  tunnel: OpenTunnel;
  migrateMs: number;
}

/**
 * Runs the migrate step and returns its error, if any, instead of throwing: whatever happened,
 * the caller reconciles next. A cancel, a lost lease, the phase timeout and the no-progress
 * watchdog all abort it the same way: the driver's abort where it has one, then the tunnel.
 */
async function runMigrateStep(context: AttemptContext, step: MigrateStep): Promise<FerryError | undefined> {
  const controller = new AbortController();
  const abort = (reason: FerryError): void => {
    if (!controller.signal.aborted) controller.abort(reason);
  };
  const onOuterAbort = (): void =>
    abort(abortReason(context.signal) ?? new FerryError('CANCELLED', 'Aborted.'));
  context.signal?.addEventListener('abort', onOuterAbort, { once: true });

  let running: RunningMigration | undefined;
  const stopWatching = watchProgress(step.tunnel, () => running, context, abort);
  controller.signal.addEventListener(
    'abort',
    () => {
      void (async () => {
        await running
          ?.abort?.()
          .catch((error: unknown) => context.logger.warn({ err: error }, 'Migration abort failed'));
        // Without a driver cancel, cutting the tunnel ends the stream and the migrate command.
        await step.tunnel.close().catch(() => undefined);
      })();
    },
    { once: true },
  );
  try {
    await step.timed('migrate', step.migrateMs, async () => {
      running = await step.startMigration(controller.signal);
      // An abort can reject `done` before anything awaits it; the catch below reads it later.
      running.done.catch(() => undefined);
      await abortable(running.done, controller.signal);
    });
    return undefined;
  } catch (thrown) {
    const error = isFerryError(thrown)
      ? thrown
      : new FerryError('MIGRATE_FAILED', coerceError(thrown).message, { cause: thrown });
    if (error.code === 'PHASE_TIMEOUT') abort(error);
    context.logger.warn({ err: error, code: error.code }, 'Migrate step failed; reconciling');
    // Let an aborted migration wind down before the hosts are observed.
    await running?.done.catch(() => undefined);
    return controller.signal.aborted && isFerryError(controller.signal.reason)
      ? controller.signal.reason
      : error;
  } finally {
    stopWatching();
    context.signal?.removeEventListener('abort', onOuterAbort);
  }
}

function discardTarget(prepared: PreparedTarget | undefined, logger: Logger): Promise<void> {
  return (prepared?.discard() ?? Promise.resolve()).catch((error: unknown) =>
    logger.warn({ err: error }, 'Target clean-up failed'),
  );
}

async function acquireBoth(
  pool: SshPool,
  source: HostConfig,
  target: HostConfig,
): Promise<{ source: SshLease; target: SshLease }> {
  const [sourceLease, targetLease] = await Promise.allSettled([pool.acquire(source), pool.acquire(target)]);
  if (sourceLease.status === 'fulfilled' && targetLease.status === 'fulfilled') {
    return { source: sourceLease.value, target: targetLease.value };
  }
  if (sourceLease.status === 'fulfilled') sourceLease.value.release();
  if (targetLease.status === 'fulfilled') targetLease.value.release();
  throw sourceLease.status === 'rejected'
    ? sourceLease.reason
    : (targetLease as PromiseRejectedResult).reason;
}

/**
 * Publishes progress every 250 ms: the bytes the relay tunnel counted, or else what the
 * driver reads from the hypervisor, with the driver's other figures where it has them. Aborts
 * the step when neither has moved for the no-progress timeout. Returns the function that stops
 * it.
 */
function watchProgress(
  tunnel: OpenTunnel,
  running: () => RunningMigration | undefined,
  context: AttemptContext,
  abort: (reason: FerryError) => void,
): () => void {
  const limitMs = context.noProgressTimeoutMs ?? defaultNoProgressTimeoutMs;
  let reported = -1;
  let lastChange = Date.now();
  let measurable = false;
  let reading = false;

  // The hypervisor's own figures (QEMU: remaining bytes, dirty rate, expected downtime) go
  // along with the byte count, in relay mode too.
  let detail: Omit<MigrationProgress, 'phase' | 'bytes'> = {};
  const record = (progress: MigrationProgress & { bytes: number }): void => {
    measurable = true;
    if (progress.bytes !== reported) {
      reported = progress.bytes;
      lastChange = Date.now();
      context.reportProgress({ ...detail, ...progress });
    }
  };
  const timer = setInterval(() => {
    const tunnelBytes = tunnel.bytes();
    if (tunnelBytes !== undefined) record({ phase: 'migrate', bytes: tunnelBytes });
    const migration = running();
    if (migration?.progress !== undefined && !reading) {
      reading = true;
      migration
        .progress()
        .then((progress) => {
          if (progress === undefined) return;
          detail = {
            ...(progress.totalBytes === undefined ? {} : { totalBytes: progress.totalBytes }),
            ...(progress.remainingBytes === undefined ? {} : { remainingBytes: progress.remainingBytes }),
            ...(progress.dirtyPagesRate === undefined ? {} : { dirtyPagesRate: progress.dirtyPagesRate }),
            ...(progress.expectedDowntimeMs === undefined
              ? {}
              : { expectedDowntimeMs: progress.expectedDowntimeMs }),
            ...(progress.downtimeLimitMs === undefined ? {} : { downtimeLimitMs: progress.downtimeLimitMs }),
          };
          if (tunnel.bytes() === undefined && progress.transferredBytes !== undefined) {
            record({ phase: 'migrate', bytes: progress.transferredBytes });
          }
        })
        .catch((error: unknown) => context.logger.debug({ err: error }, 'Progress read failed'))
        .finally(() => {
          reading = false;
        });
    }
    // Only a measurable migration can stall visibly; a direct-mode xm migration has no counter.
    if (measurable && Date.now() - lastChange > limitMs) {
      abort(
        new FerryError('NO_PROGRESS', `No migration progress for ${Math.round(limitMs / 1000)} s; aborted.`),
      );
    }
  }, 250);
  return () => clearInterval(timer);
}

/** Prefers what the tunnel saw over the migrate command's text: a refused channel means xend is not listening. */
function explainMigrateFailure(
  error: FerryError | undefined,
  tunnel: OpenTunnel,
  target: HostConfig,
): FerryError | undefined {
  const tunnelError = tunnel.lastError();
  if (tunnelError?.code === 'FORWARDING_PROHIBITED') return tunnelError;
  // These errors give the reason the migration ended, and a tunnel error seen meanwhile follows from it.
  const decided = ['NO_PROGRESS', 'PHASE_TIMEOUT', 'MIGRATION_STALLED', 'MIGRATION_NOT_CONVERGING'];
  if (tunnelError !== undefined && !decided.includes(error?.code ?? '')) {
    return new FerryError(
      'RELOCATION_REFUSED',
      `${target.name} refused the connection to its relocation port: ${tunnelError.message}`,
      { context: { host: target.name }, cause: error ?? tunnelError },
    );
  }
  return error;
}

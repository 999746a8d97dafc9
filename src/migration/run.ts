import type { Logger } from 'pino';

import type { HostConfig, Inventory } from '../config/inventory.js';
import {
  driverFor,
  type HostShell,
  type HypervisorDriver,
  type PreparedTarget,
  type RunningMigration,
  type VmDescription,
  type VmObservation,
} from '../drivers/index.js';
import { FerryError, coerceError, isFerryError } from '../errors.js';
import type { MigrationRequest } from '../jobs/request.js';
import type { SshConnection } from '../ssh/connection.js';
import { openDirectTunnel } from '../ssh/direct.js';
import type { SshPool } from '../ssh/pool.js';
import { openRelayTunnel } from '../ssh/relay.js';
import type {
  MigrationPhase,
  MigrationProgress,
  MigrationStatus,
  ObservedPlacement,
  TunnelMode,
} from '../types.js';
import { phaseTimeouts, withTimeout, type PhaseTimeouts } from './phases.js';

/** Everything one attempt needs; built by the worker for each job it takes. */
export interface AttemptContext {
  request: MigrationRequest;
  inventory: Inventory;
  pool: SshPool;
  logger: Logger;
  reportProgress(progress: MigrationProgress): void;
  /**
   * Aborts the attempt: a cancel request, a lost lock lease, or a worker shutting down. The
   * attempt stops what can be stopped, reconciles, and reports what it observed.
   */
  signal?: AbortSignal;
}

/** How an attempt ended when it did not throw. */
export interface AttemptOutcome {
  status: Extract<MigrationStatus, 'completed' | 'needs-attention'>;
  tunnel: TunnelMode;
  bytes?: number;
  phaseMs: Partial<Record<MigrationPhase, number>>;
  observed?: ObservedPlacement[];
  /** Why a person must look, for `needs-attention`. */
  error?: FerryError;
  /** True when the VM was already on the target and nothing was migrated. */
  alreadyDone?: boolean;
}

/** A tunnel of either mode, as the attempt uses it. */
interface OpenTunnel {
  port: number;
  bytes(): number | undefined;
  lastError(): FerryError | undefined;
  close(): Promise<void>;
}

function shellFor(connection: SshConnection, host: HostConfig): HostShell {
  return {
    host,
    run: async (argv, options) => {
      const output = await connection.exec(argv, {
        ...(options?.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      });
      return { stdout: output.stdout, stderr: output.stderr, code: output.code };
    },
  };
}

function toPlacement(observation: VmObservation): ObservedPlacement {
  return {
    host: observation.host,
    state: observation.state,
    ...(observation.detail === undefined ? {} : { detail: observation.detail }),
  };
}

/**
 * Runs one attempt of a migration: connect -> pre-flight -> tunnel -> migrate -> verify, with
 * the tunnel closed on every path. It throws a FerryError when the attempt failed with the VM
 * still running on the source only (the error's class says whether a retry is safe), and
 * returns `needs-attention` when the VM's placement is anything else it cannot explain.
 */
export async function runMigrationAttempt(context: AttemptContext): Promise<AttemptOutcome> {
  const { request, inventory, pool, logger } = context;
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
      return await withTimeout(phase, timeoutMs, work());
    } finally {
      phaseMs[phase] = Math.round(performance.now() - started);
    }
  };

  const leases = await timed('connect', timeouts.connectMs, () => acquireBoth(pool, source, target));
  let tunnel: OpenTunnel | undefined;
  try {
    const sourceShell = shellFor(leases.source.connection, source);
    const targetShell = shellFor(leases.target.connection, target);

    const preflight = await timed('preflight', timeouts.preflightMs, () =>
      runPreflight(driver, sourceShell, targetShell, request.vm),
    );
    if (preflight.alreadyOnTarget) {
      logger.info({ observed: preflight.observed }, 'VM already runs on the target; nothing to migrate');
      return {
        status: 'completed',
        tunnel: tunnelMode,
        phaseMs,
        observed: preflight.observed,
        alreadyDone: true,
      };
    }
    timeouts = phaseTimeouts(request.options.timeouts, preflight.memoryMiB);

    const description = preflight.description as VmDescription;
    let prepared: PreparedTarget | undefined;
    const openedTunnel = await timed('tunnel', timeouts.connectMs, async () => {
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
        await discardTarget(prepared, logger);
        throw error;
      }
    });
    tunnel = openedTunnel;
    logger.debug({ tunnelPort: openedTunnel.port, tunnel: tunnelMode }, 'Tunnel open');

    let migrateError: FerryError | undefined;
    let running: RunningMigration | undefined;
    const stopProgress = watchProgress(openedTunnel, () => running, context);
    try {
      await timed('migrate', timeouts.migrateMs, async () => {
        running = await driver.startMigration(sourceShell, request.vm, openedTunnel.port, {
          timeoutMs: timeouts.migrateMs,
        });
        await running.done;
      });
    } catch (thrown) {
      migrateError = explainMigrateFailure(coerceError(thrown), openedTunnel, target);
      // Ask the hypervisor to stop where it can; closing the tunnel below ends it otherwise.
      await running
        ?.abort?.()
        .catch((error: unknown) => logger.warn({ err: error }, 'Migration abort failed'));
    } finally {
      stopProgress();
    }
    const bytes = openedTunnel.bytes();

    // For drivers without a cancel (xm), closing the tunnel is what ends a running migration.
    await openedTunnel.close();
    tunnel = undefined;

    const outcome = await timed('verify', timeouts.verifyMs, () =>
      verifyPlacement(driver, sourceShell, targetShell, request.vm, timeouts.verifyMs),
    );
    const withBytes = bytes === undefined ? {} : { bytes };
    if (outcome.kind === 'on-target') {
      if (migrateError !== undefined) {
        logger.warn({ err: migrateError }, 'Migrate command failed, but the VM runs on the target only');
      }
      context.reportProgress({ phase: 'done', ...withBytes });
      return { status: 'completed', tunnel: tunnelMode, phaseMs, observed: outcome.observed, ...withBytes };
    }
    if (outcome.kind === 'on-source') {
      await discardTarget(prepared, logger);
      if (migrateError !== undefined) throw migrateError.withContext({ observed: outcome.observed });
    }
    const error =
      migrateError ??
      new FerryError(
        'VERIFY_FAILED',
        `After the migrate command, VM '${request.vm}' is not running on ${target.name} alone.`,
        {
          context: { vm: request.vm },
        },
      );
    return {
      status: 'needs-attention',
      tunnel: tunnelMode,
      phaseMs,
      observed: outcome.observed,
      error,
      ...withBytes,
    };
  } finally {
    if (tunnel !== undefined) {
      await tunnel.close().catch((error: unknown) => logger.warn({ err: error }, 'Tunnel close failed'));
    }
    leases.source.release();
    leases.target.release();
  }
}

async function discardTarget(prepared: PreparedTarget | undefined, logger: Logger): Promise<void> {
  await prepared?.discard().catch((error: unknown) => logger.warn({ err: error }, 'Target clean-up failed'));
}

async function acquireBoth(pool: SshPool, source: HostConfig, target: HostConfig) {
  const [sourceLease, targetLease] = await Promise.allSettled([pool.acquire(source), pool.acquire(target)]);
  if (sourceLease.status === 'fulfilled' && targetLease.status === 'fulfilled') {
    return { source: sourceLease.value, target: targetLease.value };
  }
  if (sourceLease.status === 'fulfilled') sourceLease.value.release();
  if (targetLease.status === 'fulfilled') targetLease.value.release();
  const failed =
    sourceLease.status === 'rejected' ? sourceLease.reason : (targetLease as PromiseRejectedResult).reason;
  throw failed;
}

interface PreflightResult {
  alreadyOnTarget: boolean;
  memoryMiB?: number;
  description?: VmDescription;
  observed: ObservedPlacement[];
}

async function runPreflight(
  driver: HypervisorDriver,
  source: HostShell,
  target: HostShell,
  vm: string,
): Promise<PreflightResult> {
  const [onSource, onTarget] = await Promise.all([driver.locate(source, vm), driver.locate(target, vm)]);
  const observed = [toPlacement(onSource), toPlacement(onTarget)];
  const context = { vm, observed };

  if (onTarget.state === 'running' && onSource.state === 'absent') return { alreadyOnTarget: true, observed };
  if (onSource.state === 'migrating' || onTarget.state === 'paused') {
    throw new FerryError(
      'MIGRATION_IN_FLIGHT',
      `A migration of VM '${vm}' is already in flight from ${source.host.name}.`,
      {
        context: { ...context, host: source.host.name },
      },
    );
  }
  if (onTarget.state !== 'absent') {
    throw new FerryError(
      'VM_ON_TARGET',
      `VM '${vm}' already exists on ${target.host.name} (state ${onTarget.state}).`,
      {
        context: { ...context, host: target.host.name },
      },
    );
  }
  if (onSource.state === 'absent') {
    throw new FerryError('VM_NOT_FOUND', `VM '${vm}' does not exist on ${source.host.name}.`, {
      context: { ...context, host: source.host.name },
    });
  }
  if (onSource.state !== 'running') {
    throw new FerryError(
      'VM_NOT_RUNNING',
      `VM '${vm}' is ${onSource.state} on ${source.host.name}; only a running VM can be live-migrated.`,
      {
        context: { ...context, host: source.host.name },
      },
    );
  }

  const description = await driver.describe(source, vm);
  const [capacity, missingBridges, missingPaths] = await Promise.all([
    driver.capacity(target),
    driver.missingBridges(target, description.bridges),
    driver.missingStoragePaths(target, description.storagePaths),
  ]);
  const targetContext = { ...context, host: target.host.name };
  if (capacity.freeMemoryMiB < description.memoryMiB) {
    throw new FerryError(
      'TARGET_MEMORY_SHORT',
      `${target.host.name} has ${capacity.freeMemoryMiB} MiB free; VM '${vm}' needs ${description.memoryMiB} MiB.`,
      { context: targetContext },
    );
  }
  if (missingBridges.length > 0) {
    throw new FerryError(
      'TARGET_BRIDGE_MISSING',
      `${target.host.name} lacks the bridge(s) ${missingBridges.join(', ')} that VM '${vm}' uses.`,
      {
        context: targetContext,
      },
    );
  }
  if (missingPaths.length > 0) {
    throw new FerryError(
      'TARGET_STORAGE_MISSING',
      `${target.host.name} cannot reach the storage path(s) ${missingPaths.join(', ')} of VM '${vm}'.`,
      {
        context: targetContext,
      },
    );
  }
  return { alreadyOnTarget: false, memoryMiB: description.memoryMiB, description, observed };
}

async function openTunnel(
  mode: TunnelMode,
  sourceConnection: SshConnection,
  targetConnection: SshConnection,
  source: HostConfig,
  target: HostConfig,
  targetPort: number,
): Promise<OpenTunnel> {
  if (mode === 'relay') {
    const relay = await openRelayTunnel(sourceConnection, targetConnection, {
      host: '127.0.0.1',
      port: targetPort,
    });
    return {
      port: relay.port,
      bytes: () => relay.bytesForward,
      lastError: () => relay.lastError,
      close: () => relay.close(),
    };
  }
  if (source.direct === undefined) {
    throw new FerryError(
      'INVALID_INVENTORY',
      `Host ${source.name} has no 'direct' section, so it cannot open direct-mode tunnels. Add direct.identityFile and direct.knownHostsFile, or use --tunnel relay.`,
      {
        context: { host: source.name },
      },
    );
  }
  const direct = await openDirectTunnel(sourceConnection, {
    sshPath: source.commands.ssh,
    identityFile: source.direct.identityFile,
    knownHostsFile: source.direct.knownHostsFile,
    targetAddress: target.address,
    targetSshPort: target.port,
    targetUser: target.user,
    remotePort: targetPort,
  });
  return {
    port: direct.port,
    bytes: () => undefined,
    lastError: () => undefined,
    close: () => direct.close(),
  };
}

/**
 * Publishes progress every 250 ms: the bytes the relay tunnel counted, or else what the
 * driver reads from the hypervisor. Returns the function that stops it.
 */
function watchProgress(
  tunnel: OpenTunnel,
  running: () => RunningMigration | undefined,
  context: AttemptContext,
): () => void {
  let reported = -1;
  let reading = false;
  const timer = setInterval(() => {
    const tunnelBytes = tunnel.bytes();
    if (tunnelBytes !== undefined) {
      if (tunnelBytes !== reported) {
        reported = tunnelBytes;
        context.reportProgress({ phase: 'migrate', bytes: tunnelBytes });
      }
      return;
    }
    const migration = running();
    if (migration?.progress === undefined || reading) return;
    reading = true;
    migration
      .progress()
      .then((progress) => {
        const bytes = progress?.transferredBytes;
        if (bytes !== undefined && bytes !== reported) {
          reported = bytes;
          context.reportProgress({
            phase: 'migrate',
            bytes,
            ...(progress?.totalBytes === undefined ? {} : { totalBytes: progress.totalBytes }),
          });
        }
      })
      .catch((error: unknown) => context.logger.debug({ err: error }, 'Progress read failed'))
      .finally(() => {
        reading = false;
      });
  }, 250);
  return () => clearInterval(timer);
}

/** Prefers what the tunnel saw over the migrate command's text: a refused channel means xend is not listening. */
function explainMigrateFailure(error: Error, tunnel: OpenTunnel, target: HostConfig): FerryError {
  const tunnelError = tunnel.lastError();
  if (
    tunnelError !== undefined &&
    (tunnelError.code === 'TUNNEL_FAILED' || tunnelError.code === 'RELOCATION_REFUSED')
  ) {
    return new FerryError(
      'RELOCATION_REFUSED',
      `${target.name} refused the connection to its relocation port ${target.relocationPort}: ${tunnelError.message}`,
      {
        context: { host: target.name },
        cause: error,
      },
    );
  }
  if (tunnelError?.code === 'FORWARDING_PROHIBITED') return tunnelError;
  if (isFerryError(error)) return error;
  return new FerryError('MIGRATE_FAILED', error.message, { cause: error });
}

type Placement = { kind: 'on-target' | 'on-source' | 'unclear'; observed: ObservedPlacement[] };

/**
 * Observes both hosts until the VM runs on exactly one of them. A domain still `migrating` or
 * paused on the target is given until `timeoutMs` to settle; anything else is reported as seen.
 */
async function verifyPlacement(
  driver: HypervisorDriver,
  source: HostShell,
  target: HostShell,
  vm: string,
  timeoutMs: number,
): Promise<Placement> {
  const deadline = Date.now() + timeoutMs * 0.8;
  for (;;) {
    const [onSource, onTarget] = await Promise.all([driver.locate(source, vm), driver.locate(target, vm)]);
    const observed = [toPlacement(onSource), toPlacement(onTarget)];
    if (onTarget.state === 'running' && onSource.state === 'absent') return { kind: 'on-target', observed };
    if (onSource.state === 'running' && onTarget.state === 'absent') return { kind: 'on-source', observed };
    const settling = onSource.state === 'migrating' || onTarget.state === 'paused';
    if (!settling || Date.now() > deadline) return { kind: 'unclear', observed };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export type { PhaseTimeouts };

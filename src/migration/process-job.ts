import { UnrecoverableError, WaitingError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

import type { Inventory } from '../config/inventory.js';
import { FerryError, coerceError, isFerryError } from '../errors.js';
import { cancelKey } from '../jobs/cancel.js';
import type { MigrationJobData } from '../jobs/queue.js';
import { requestFields, type ResultStore } from '../jobs/results.js';
import { statusAfterLeaseLoss } from '../locks/lease.js';
import type { LockManager } from '../locks/manager.js';
import { jobLogger } from '../log.js';
import type { SshPool } from '../ssh/pool.js';
import type { MigrationResult } from '../types.js';
import { runMigrationAttempt, type AttemptOutcome } from './run.js';

/** Dependencies that processJob receives from the worker that runs it. */
export interface ProcessDependencies {
  inventory: Inventory;
  pool: SshPool;
  results: ResultStore;
  redis: Redis;
  prefix: string;
  logger: Logger;
  bastion: string;
  noProgressTimeoutMs?: number;
  /** Seconds the migrate-started marker of a job is kept. */
  retentionSeconds: number;
  /** Registers the abort controller of a running job, so cancel requests can reach it. */
  track(jobId: string, controller: AbortController): () => void;
  /** Lock scheduler: the job waits there for its VM lock and host slots, using no attempt. */
  locks?: LockManager;
}

/** Redis key that marks a job whose migrate step has started at least once. */
export function migrateStartedKey(prefix: string, jobId: string): string {
  return `${prefix}:migrate-started:${jobId}`;
}

/**
 * Runs one attempt of a migration job and turns its end into a result. A job that ends for
 * good (completed, failed, cancelled, needs-attention) has its result published before BullMQ
 * learns of the end, so that a requester can always read why. Retryable failures are thrown to BullMQ,
 * which schedules the next attempt with the worker's backoff.
 */
export async function processJob(
  job: Job<MigrationJobData, MigrationResult>,
  deps: ProcessDependencies,
): Promise<MigrationResult> {
  const request = job.data;
  const attempt = job.attemptsMade + 1;
  const maxAttempts = job.opts.attempts ?? 1;
  const jobId = job.id ?? 'unknown';
  const logger = jobLogger(deps.logger, {
    jobId,
    vm: request.vm,
    source: request.source,
    target: request.target,
    attempt,
    bastion: deps.bastion,
  });
  const startedAt = new Date();
  logger.debug('Migration attempt started');

  const base = {
    ...requestFields(jobId, request),
    attempts: attempt,
    bastion: deps.bastion,
    startedAt: startedAt.toISOString(),
  };
  const publish = async (result: MigrationResult): Promise<MigrationResult> => {
    await deps.results.publish(result);
    return result;
  };

  const controller = new AbortController();
  const untrack = deps.track(jobId, controller);
  const markerKey = migrateStartedKey(deps.prefix, jobId);
  let outcome: AttemptOutcome;
  try {
    const cancelledBy = await deps.redis.get(cancelKey(deps.prefix, jobId));
    const migrateStartedBefore = (await deps.redis.exists(markerKey)) === 1;
    if (cancelledBy !== null && !migrateStartedBefore) {
      controller.abort(new FerryError('CANCELLED', `Cancelled by ${cancelledBy}.`));
    }
    // A lost lease aborts the controller with LEASE_LOST. The worker releases after publishing.
    await deps.locks?.acquire(job, controller, logger);
    outcome = await runMigrationAttempt({
      jobId,
      request,
      inventory: deps.inventory,
      pool: deps.pool,
      logger,
      migrateStartedBefore,
      markMigrateStarted: async () => {
        await deps.redis.set(markerKey, new Date().toISOString(), 'EX', deps.retentionSeconds);
      },
      signal: controller.signal,
      // A job cancelled after an earlier attempt started migrating still reconciles first, so
      // that its result reports where the VM is. It then stops before migrating again.
      isCancelled: () => cancelledBy !== null,
      ...(deps.noProgressTimeoutMs === undefined ? {} : { noProgressTimeoutMs: deps.noProgressTimeoutMs }),
      reportProgress: (progress) => {
        job
          .updateProgress(progress)
          .catch((error: unknown) => logger.warn({ err: error }, 'Progress update failed'));
      },
    });
  } catch (thrown) {
    // A job that waited for its locks when the worker began to stop is back in the queue.
    if (thrown instanceof WaitingError) throw thrown;
    const error = isFerryError(thrown)
      ? thrown.withContext({ jobId, attempt })
      : new FerryError('MIGRATE_FAILED', coerceError(thrown).message, {
          cause: thrown,
          context: { jobId, attempt },
        });
    if (error.code === 'CANCELLED') {
      logger.info({ code: error.code }, 'Migration cancelled before it moved anything');
      await publish({
        ...base,
        status: 'cancelled',
        phaseMs: {},
        finishedAt: new Date().toISOString(),
        error: errorOf(error),
      });
      throw new UnrecoverableError(`CANCELLED: ${error.message}`);
    }
    if (error.retryable && attempt < maxAttempts) {
      logger.warn({ err: error, code: error.code }, 'Migration attempt failed; it will be retried');
      throw error;
    }
    await publish({
      ...base,
      status:
        error.code === 'LEASE_LOST'
          ? statusAfterLeaseLoss(error.context.observed, request.source, request.target)
          : 'failed',
      phaseMs: {},
      finishedAt: new Date().toISOString(),
      error: errorOf(error),
      ...(Array.isArray(error.context.observed)
        ? { observed: error.context.observed as MigrationResult['observed'] }
        : {}),
    });
    logger.error({ err: error, code: error.code }, 'Migration failed');
    throw new UnrecoverableError(`${error.code}: ${error.message}`);
  } finally {
    untrack();
  }

  const result = await publish({
    ...base,
    status: outcome.status,
    phaseMs: outcome.phaseMs,
    finishedAt: new Date().toISOString(),
    ...(outcome.bytes === undefined ? {} : { bytes: outcome.bytes }),
    ...(outcome.downtimeMs === undefined ? {} : { downtimeMs: outcome.downtimeMs }),
    ...(outcome.observed === undefined ? {} : { observed: outcome.observed }),
    ...(outcome.error === undefined ? {} : { error: errorOf(outcome.error) }),
  });
  if (result.status === 'completed') {
    logger.info(
      {
        bytes: result.bytes,
        downtimeMs: result.downtimeMs,
        phaseMs: result.phaseMs,
        alreadyDone: outcome.alreadyDone,
      },
      'Migration completed',
    );
    return result;
  }
  if (result.status === 'cancelled') {
    logger.info({ observed: result.observed }, 'Migration cancelled; the VM stays on the source');
    throw new UnrecoverableError(`CANCELLED: ${result.error?.message ?? 'cancelled'}`);
  }
  logger.error({ observed: result.observed, code: result.error?.code }, 'Migration needs attention');
  throw new UnrecoverableError(`needs-attention: ${result.error?.message ?? 'VM placement unclear'}`);
}

function errorOf(error: FerryError): { code: string; message: string } {
  return { code: error.code, message: error.message };
}

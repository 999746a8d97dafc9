import { hostname } from 'node:os';

import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';

import type { Inventory } from '../config/inventory.js';
import { FerryError, coerceError, isFerryError } from '../errors.js';
import { createRedisConnection, defaultPrefix, queueName, type MigrationJobData } from '../jobs/queue.js';
import { ResultStore } from '../jobs/results.js';
import { createLogger, jobLogger } from '../log.js';
import { SshPool } from '../ssh/pool.js';
import type { MigrationResult } from '../types.js';
import { defaultRetryBackoff, retryDelayMs, type RetryBackoff } from './backoff.js';
import { runMigrationAttempt, type AttemptOutcome } from './run.js';

export interface MigrationWorkerOptions {
  redisUrl: string;
  /** BullMQ key prefix. Default 'ferry'. */
  prefix?: string;
  inventory: Inventory;
  /** Jobs run at once by this worker. Default 4. */
  concurrency?: number;
  /** Exit once no job is waiting, delayed or running, for timer-started or serverless runs. Default false. */
  exitWhenDrained?: boolean;
  /** Name of this bastion in results and logs. Default the machine's host name. */
  bastion?: string;
  /** How long an unused SSH connection to a host stays open for the next job. Default 60 s. */
  sshIdleTimeoutMs?: number;
  /** Delay between attempts of a job: exponential from baseDelayMs, with jitter. Default 5 s to 5 min. */
  retryBackoff?: Partial<RetryBackoff>;
  logger?: Logger;
}

export interface MigrationWorkerHandle {
  /** Stops taking jobs and waits for running ones. */
  close(): Promise<void>;
  /** Resolves when the worker has stopped (after close(), or once drained with exitWhenDrained). */
  readonly stopped: Promise<void>;
  /** The SSH connection pool, for tests and benchmarks that count handshakes. */
  readonly pool: SshPool;
}

/**
 * Starts a worker that takes migration jobs from the queue and runs them. A job that ends for
 * good (completed, failed, needs-attention) has its result written to the result store before
 * BullMQ is told, so that a requester can always read why.
 */
export async function startMigrationWorker(options: MigrationWorkerOptions): Promise<MigrationWorkerHandle> {
  const prefix = options.prefix ?? defaultPrefix;
  const bastion = options.bastion ?? hostname();
  const logger = options.logger ?? createLogger();
  const connection = createRedisConnection(options.redisUrl, 'worker');
  const results = new ResultStore(connection, { prefix });
  const pool = new SshPool({ idleTimeoutMs: options.sshIdleTimeoutMs ?? 60_000 });
  const backoff: RetryBackoff = { ...defaultRetryBackoff, ...options.retryBackoff };

  const processor = async (job: Job<MigrationJobData, MigrationResult>): Promise<MigrationResult> =>
    processJob(job, { inventory: options.inventory, pool, results, logger, bastion });

  const worker = new Worker<MigrationJobData, MigrationResult>(queueName, processor, {
    connection: createRedisConnection(options.redisUrl, 'worker'),
    prefix,
    concurrency: options.concurrency ?? 4,
    // Migrations run for minutes to hours; the lock is renewed every lockDuration / 2.
    lockDuration: 60_000,
    maxStalledCount: 1,
    settings: {
      backoffStrategy: (attemptsMade: number) => retryDelayMs(attemptsMade, backoff),
    },
  });
  worker.on('error', (error) => logger.error({ err: error }, 'Worker error'));

  let resolveStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });
  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    closing ??= (async () => {
      await worker.close();
      await pool.close();
      connection.disconnect();
      logger.info({ bastion }, 'Worker stopped');
      resolveStopped();
    })();
    return closing;
  };

  if (options.exitWhenDrained === true) {
    const queue = new Queue(queueName, { connection, prefix });
    const checkDrained = async (): Promise<void> => {
      const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'wait');
      const pending = Object.values(counts).reduce((sum: number, count: number) => sum + count, 0);
      if (pending === 0) {
        clearInterval(timer);
        await queue.close();
        await close();
      }
    };
    const timer = setInterval(() => {
      checkDrained().catch((error: unknown) => logger.warn({ err: error }, 'Queue drain check failed'));
    }, 500);
    worker.on('drained', () => {
      checkDrained().catch((error: unknown) => logger.warn({ err: error }, 'Queue drain check failed'));
    });
  }

  logger.info({ bastion, prefix, concurrency: options.concurrency ?? 4 }, 'Worker started');
  return { close, stopped, pool };
}

interface ProcessDependencies {
  inventory: Inventory;
  pool: SshPool;
  results: ResultStore;
  logger: Logger;
  bastion: string;
}

async function processJob(
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
    jobId,
    vm: request.vm,
    source: request.source,
    target: request.target,
    requester: request.requester,
    ...(request.reason === undefined ? {} : { reason: request.reason }),
    ...(request.ticket === undefined ? {} : { ticket: request.ticket }),
    tunnel: request.options.tunnel,
    attempts: attempt,
    bastion: deps.bastion,
    startedAt: startedAt.toISOString(),
  };

  let outcome: AttemptOutcome;
  try {
    outcome = await runMigrationAttempt({
      request,
      inventory: deps.inventory,
      pool: deps.pool,
      logger,
      reportProgress: (progress) => {
        job
          .updateProgress(progress)
          .catch((error: unknown) => logger.warn({ err: error }, 'Progress update failed'));
      },
    });
  } catch (thrown) {
    const error = isFerryError(thrown)
      ? thrown.withContext({ jobId, attempt })
      : new FerryError('MIGRATE_FAILED', coerceError(thrown).message, {
          cause: thrown,
          context: { jobId, attempt },
        });
    if (error.retryable && attempt < maxAttempts) {
      logger.warn({ err: error, code: error.code }, 'Migration attempt failed; it will be retried');
      throw error;
    }
    const result: MigrationResult = {
      ...base,
      status: 'failed',
      phaseMs: {},
      finishedAt: new Date().toISOString(),
      error: { code: error.code, message: error.message },
      ...(Array.isArray(error.context.observed)
        ? { observed: error.context.observed as MigrationResult['observed'] }
        : {}),
    };
    await deps.results.publish(result);
    logger.error({ err: error, code: error.code }, 'Migration failed');
    throw new UnrecoverableError(`${error.code}: ${error.message}`);
  }

  const result: MigrationResult = {
    ...base,
    status: outcome.status,
    phaseMs: outcome.phaseMs,
    finishedAt: new Date().toISOString(),
    ...(outcome.bytes === undefined ? {} : { bytes: outcome.bytes }),
    ...(outcome.observed === undefined ? {} : { observed: outcome.observed }),
    ...(outcome.error === undefined
      ? {}
      : { error: { code: outcome.error.code, message: outcome.error.message } }),
  };
  await deps.results.publish(result);
  if (result.status === 'completed') {
    logger.info({ bytes: result.bytes, phaseMs: result.phaseMs }, 'Migration completed');
    return result;
  }
  logger.error({ observed: result.observed, code: result.error?.code }, 'Migration needs attention');
  throw new UnrecoverableError(`needs-attention: ${result.error?.message ?? 'VM placement unclear'}`);
}

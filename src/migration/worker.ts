import { hostname } from 'node:os';

import { Queue, Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';

import type { Inventory } from '../config/inventory.js';
import { FerryError } from '../errors.js';
import { cancelChannel } from '../jobs/cancel.js';
import { createRedisConnection, defaultPrefix, queueName, type MigrationJobData } from '../jobs/queue.js';
import { ResultStore, defaultResultRetentionMs, requestFields } from '../jobs/results.js';
import { LockManager } from '../locks/manager.js';
import { createLogger } from '../log.js';
import { SshPool } from '../ssh/pool.js';
import type { MigrationResult } from '../types.js';
import { defaultRetryBackoff, retryDelayMs, type RetryBackoff } from './backoff.js';
import { processJob } from './process-job.js';

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
  /**
   * BullMQ job lock, renewed every half of it while a job runs. A job whose worker died is
   * taken over by another worker once the lock has expired. Default 60 s.
   */
  lockDurationMs?: number;
  /** How often this worker looks for jobs whose worker died. Default 30 s. */
  stalledIntervalMs?: number;
  /** Aborts a migration whose tunnel or driver shows no progress for this long. Default 150 s. */
  noProgressTimeoutMs?: number;
  /**
   * How long close() lets running migrations finish before it stops anyway, leaving them to
   * another worker's reconciliation. Default 10 min.
   */
  shutdownGraceMs?: number;
  /**
   * Lease of a job's VM lock and host slots, renewed every sixth of it. A lease that no worker
   * renews frees them after this long. Default 30 s.
   */
  leaseMs?: number;
  /** A job that has waited this long for its host slots reserves them against newer jobs. Default 10 min. */
  slotAgeingMs?: number;
  /** A job that has waited this long for its VM lock and host slots fails. Default 6 h. */
  slotMaxWaitMs?: number;
  /** Migrations at once across all workers and hosts; give every worker the same value. Default no cap. */
  maxMigrations?: number;
  logger?: Logger;
}

export interface MigrationWorkerHandle {
  /** Stops taking jobs and lets running ones finish within the shutdown grace period. */
  close(): Promise<void>;
  /** Resolves when the worker has stopped (after close(), or once drained with exitWhenDrained). */
  readonly stopped: Promise<void>;
  /** The SSH connection pool, for tests and benchmarks that count handshakes. */
  readonly pool: SshPool;
}

/**
 * Starts a worker that takes migration jobs from the queue and runs them.
 *
 * BullMQ runs a job at least once: a job whose worker died is "stalled" and runs again on
 * another worker. That is safe here because every attempt reconciles first, from where the
 * VM is observed to be, and never migrates a VM that already moved or is still moving.
 */
export async function startMigrationWorker(options: MigrationWorkerOptions): Promise<MigrationWorkerHandle> {
  const prefix = options.prefix ?? defaultPrefix;
  const bastion = options.bastion ?? hostname();
  const logger = options.logger ?? createLogger();
  const connection = createRedisConnection(options.redisUrl, 'worker');
  const subscriber = createRedisConnection(options.redisUrl, 'worker');
  const results = new ResultStore(connection, { prefix });
  const pool = new SshPool({ idleTimeoutMs: options.sshIdleTimeoutMs ?? 60_000 });
  const backoff: RetryBackoff = { ...defaultRetryBackoff, ...options.retryBackoff };
  const running = new Map<string, AbortController>();
  const locks = await LockManager.start({
    redisUrl: options.redisUrl,
    prefix,
    inventory: options.inventory,
    bastion,
    logger,
    pool,
    leaseMs: options.leaseMs,
    ageingMs: options.slotAgeingMs,
    maxWaitMs: options.slotMaxWaitMs,
    maxMigrations: options.maxMigrations,
  });

  // Cancel requests reach the worker that runs the job, on whichever bastion, through Redis.
  await subscriber.subscribe(cancelChannel(prefix));
  subscriber.on('message', (_channel: string, jobId: string) => {
    const controller = running.get(jobId);
    if (controller === undefined) return;
    logger.info({ jobId }, 'Cancel request received');
    controller.abort(new FerryError('CANCELLED', 'Cancelled while running.', { context: { jobId } }));
  });

  const processor = async (job: Job<MigrationJobData, MigrationResult>): Promise<MigrationResult> =>
    processJob(job, {
      inventory: options.inventory,
      pool,
      results,
      redis: connection,
      prefix,
      logger,
      bastion,
      retentionSeconds: Math.ceil(defaultResultRetentionMs / 1000),
      ...(options.noProgressTimeoutMs === undefined
        ? {}
        : { noProgressTimeoutMs: options.noProgressTimeoutMs }),
      track: (jobId, controller) => {
        running.set(jobId, controller);
        return () => running.delete(jobId);
      },
      locks,
      // Released only after processJob has published the result.
    }).finally(() => locks.release(job.id ?? ''));

  const workerConnection = createRedisConnection(options.redisUrl, 'worker');
  const worker = new Worker<MigrationJobData, MigrationResult>(queueName, processor, {
    connection: workerConnection,
    prefix,
    concurrency: options.concurrency ?? 4,
    // Migrations run for minutes to hours; the lock is renewed every lockDuration / 2.
    lockDuration: options.lockDurationMs ?? 60_000,
    stalledInterval: options.stalledIntervalMs ?? 30_000,
    // A job whose worker died runs again (reconciling first) up to twice more before BullMQ
    // gives up on it; the 'failed' handler below then records it as needing attention.
    maxStalledCount: 2,
    settings: {
      backoffStrategy: (attemptsMade: number) => retryDelayMs(attemptsMade, backoff),
    },
  });
  worker.on('error', (error) => logger.error({ err: error }, 'Worker error'));
  worker.on('failed', (job, error) => {
    if (job?.id === undefined) return;
    recordUnexplainedFailure(job, error, results, bastion).catch((recordError: unknown) =>
      logger.error({ err: recordError, jobId: job.id }, 'Could not record a failed job'),
    );
  });

  let resolveStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });
  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    closing ??= (async () => {
      const graceMs = options.shutdownGraceMs ?? 600_000;
      logger.info(
        { bastion, running: [...running.keys()], graceMs },
        'Worker stopping; running jobs may finish',
      );
      let graceTimer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'grace-over'>((resolve) => {
        graceTimer = setTimeout(() => resolve('grace-over'), graceMs);
      });
      // Jobs still waiting for their locks go back to the queue instead of holding up the stop.
      locks.stopWaiting();
      const ended = await Promise.race([worker.close().then(() => 'closed' as const), graceOver]);
      clearTimeout(graceTimer);
      if (ended === 'grace-over') {
        // The unfinished jobs stay locked until their lock expires; then another worker takes
        // them over and reconciles from what the hosts show.
        logger.error(
          { jobs: [...running.keys()] },
          'Shutdown grace period over; leaving running migrations to reconciliation',
        );
        await worker.close(true);
      }
      await pool.close();
      await locks.close();
      subscriber.disconnect();
      workerConnection.disconnect();
      connection.disconnect();
      logger.info({ bastion }, 'Worker stopped');
      resolveStopped();
    })();
    return closing;
  };

  if (options.exitWhenDrained === true) watchForDrain(worker, connection, prefix, logger, close);

  logger.info({ bastion, prefix, concurrency: options.concurrency ?? 4 }, 'Worker started');
  return { close, stopped, pool };
}

/**
 * Publishes a result for a job that BullMQ failed without one, such as a job that stalled
 * more often than allowed: no worker observed its VM at the end, so a person must look.
 */
async function recordUnexplainedFailure(
  job: Job<MigrationJobData, MigrationResult>,
  error: Error,
  results: ResultStore,
  bastion: string,
): Promise<void> {
  const jobId = job.id as string;
  if (job.attemptsMade < (job.opts.attempts ?? 1) && !/stalled/i.test(error.message)) return;
  if ((await results.get(jobId)) !== undefined) return;
  const now = new Date().toISOString();
  const request = job.data;
  await results.publish({
    ...requestFields(jobId, request),
    status: 'needs-attention',
    phaseMs: {},
    attempts: job.attemptsMade,
    bastion,
    startedAt: now,
    finishedAt: now,
    error: { code: 'VERIFY_FAILED', message: `The job failed without a verified outcome: ${error.message}` },
  });
}

function watchForDrain(
  worker: Worker,
  connection: ReturnType<typeof createRedisConnection>,
  prefix: string,
  logger: Logger,
  close: () => Promise<void>,
): void {
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

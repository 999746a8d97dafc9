/**
 * The producer side: queue a validated migration request, report its status, wait for its end.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import type { Inventory } from '../config/inventory.js';
import { FerryError, isFerryError } from '../errors.js';
import {
  migrationPhases,
  migrationStatuses,
  type MigrationProgress,
  type MigrationResult,
  type MigrationStatus,
} from '../types.js';
import {
  migrateJobName,
  queueName,
  retryBackoffType,
  type MigrationJob,
  type MigrationJobData,
  type MigrationQueue,
} from './queue.js';
import { quoteValue } from './quote.js';
import { validateRequest } from './request.js';

/** State of a job: not yet final (`queued`, `running`, `retrying`) or a final MigrationStatus. */
export type MigrationState = 'queued' | 'running' | 'retrying' | MigrationStatus;

export interface MigrationStatusReport {
  jobId: string;
  state: MigrationState;
  /** The last progress the worker published, when it published one. */
  progress?: MigrationProgress;
  /** The published result; present once the job ended and the worker recorded it. */
  result?: MigrationResult;
  /** Attempts that have ended, failed or completed, as BullMQ counts them. */
  attemptsMade: number;
  /** BullMQ's failure reason, for a job that failed without a published result. */
  failedReason?: string;
  /** The job's request, while BullMQ still keeps the job. */
  request?: MigrationJobData;
}

export interface WaitForResultOptions {
  /** Give up after this many milliseconds and return the last status. Default: no limit. */
  timeoutMs?: number;
  /** Called with the status each time its state, progress or attempts change. */
  onProgress?: (report: MigrationStatusReport) => void;
  /** Milliseconds between two status reads. Default 250. */
  pollMs?: number;
  /** How long Redis may stay unreachable before waiting fails, in milliseconds. Default 30 s. */
  redisOutageMs?: number;
}

const defaultPollMs = 250;
const defaultRedisOutageMs = 30_000;

// Our job ids are UUIDs; BullMQ's own are decimal. Anything else cannot name a job of ours.
const jobIdPattern = /^[A-Za-z0-9-]{1,64}$/;

/** Returns true for the states in which a job stays for good. */
export function isFinalState(state: MigrationState): state is MigrationStatus {
  return (migrationStatuses as readonly string[]).includes(state);
}

/**
 * Validates the request, then adds it to the queue as one job. Returns the job id, a random
 * UUID, so that ids never repeat even if the queue is emptied and its counter starts again.
 *
 * Validation runs before any Redis command, so a rejected request is never queued.
 * Throws INVALID_REQUEST or UNKNOWN_HOST for a bad request and REDIS_UNAVAILABLE when Redis
 * cannot be reached.
 */
export async function enqueueMigration(
  queue: MigrationQueue,
  inventory: Inventory,
  input: unknown,
): Promise<{ jobId: string }> {
  const request = validateRequest(input, inventory);
  const data: MigrationJobData = { ...request, enqueuedAt: new Date().toISOString() };
  // Finished jobs stay as long as their results, so that status keeps showing both.
  const keepSeconds = Math.ceil(queue.retentionMs / 1000);
  const jobId = randomUUID();

  try {
    await queue.queue.add(migrateJobName, data, {
      jobId,
      attempts: request.options.attempts,
      // The worker computes the delay (exponential with jitter), so that retry timing is a
      // setting of the bastion rather than of each producer.
      backoff: { type: retryBackoffType },
      removeOnComplete: { age: keepSeconds },
      removeOnFail: { age: keepSeconds },
    });
  } catch (error) {
    throw queue.mapRedisError(error);
  }
  return { jobId };
}

function jobNotFound(queue: MigrationQueue, jobId: string): FerryError {
  return new FerryError(
    'JOB_NOT_FOUND',
    `No migration job ${quoteValue(jobId)} in queue "${queueName}" under prefix "${queue.prefix}": ` +
      'check the id and the prefix. Finished jobs are kept only for the retention period.',
    { context: { jobId } },
  );
}

function progressOf(job: MigrationJob | undefined): MigrationProgress | undefined {
  const progress: unknown = job?.progress;
  if (typeof progress !== 'object' || progress === null) return undefined;
  const phase = (progress as { phase?: unknown }).phase;
  if (!(migrationPhases as readonly unknown[]).includes(phase)) return undefined;
  return progress as MigrationProgress;
}

function resultOf(value: unknown): MigrationResult | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const status = (value as { status?: unknown }).status;
  return (migrationStatuses as readonly unknown[]).includes(status) ? (value as MigrationResult) : undefined;
}

async function readStatus(queue: MigrationQueue, jobId: string): Promise<MigrationStatusReport> {
  if (!jobIdPattern.test(jobId)) throw jobNotFound(queue, jobId);

  const stored = await queue.results.get(jobId);
  const job = (await queue.queue.getJob(jobId)) as MigrationJob | undefined;
  const report: MigrationStatusReport = { jobId, state: 'queued', attemptsMade: job?.attemptsMade ?? 0 };
  const progress = progressOf(job);
  if (progress !== undefined) report.progress = progress;
  if (job !== undefined) report.request = job.data;

  // The published record is written when a job ends for good, so it wins over BullMQ's state,
  // which can still show the job as active or retrying at that moment.
  if (stored !== undefined) {
    report.state = stored.status;
    report.result = stored;
    report.attemptsMade = Math.max(report.attemptsMade, stored.attempts);
    return report;
  }
  if (job === undefined) throw jobNotFound(queue, jobId);

  const state = await job.getState();
  if (state === 'completed' || state === 'failed') {
    // The job may have ended between the first read of the record and the job's state; the
    // worker writes the record before it reports the end to BullMQ, so the record exists now.
    const late = await queue.results.get(jobId);
    if (late !== undefined) {
      report.state = late.status;
      report.result = late;
      report.attemptsMade = Math.max(report.attemptsMade, late.attempts);
      return report;
    }
  }
  switch (state) {
    case 'completed': {
      const returned = resultOf(job.returnvalue);
      report.state = returned?.status ?? 'completed';
      if (returned !== undefined) report.result = returned;
      break;
    }
    case 'failed':
      report.state = 'failed';
      report.failedReason = job.failedReason;
      break;
    case 'active':
      report.state = 'running';
      break;
    case 'delayed':
    case 'waiting':
    case 'prioritized':
    case 'waiting-children':
      report.state = report.attemptsMade > 0 ? 'retrying' : 'queued';
      break;
    default:
      // 'unknown': BullMQ removed the job between the two reads.
      throw jobNotFound(queue, jobId);
  }
  return report;
}

/**
 * Returns the state, progress and result of a job. The published result, when there is one, decides the state;
 * otherwise BullMQ's job state does, and a job BullMQ marks failed reads as `failed` with
 * its failedReason. Throws JOB_NOT_FOUND for an unknown id and REDIS_UNAVAILABLE when Redis
 * cannot be reached.
 */
export async function getMigrationStatus(
  queue: MigrationQueue,
  jobId: string,
): Promise<MigrationStatusReport> {
  try {
    return await readStatus(queue, jobId);
  } catch (error) {
    if (isFerryError(error)) throw error;
    throw queue.mapRedisError(error);
  }
}

function changeKey(report: MigrationStatusReport): string {
  return JSON.stringify([report.state, report.progress, report.attemptsMade]);
}

/**
 * Polls the job's status until it is final and returns that status, whose `result` contains the
 * published MigrationResult. When `timeoutMs` passes first, returns the last status, which is
 * not final: check it with `isFinalState`.
 *
 * The result always comes from the published record or the job itself, never from BullMQ's
 * event stream, which Redis trims. Redis outages shorter than `redisOutageMs` are waited out.
 */
export async function waitForResult(
  queue: MigrationQueue,
  jobId: string,
  options: WaitForResultOptions = {},
): Promise<MigrationStatusReport> {
  const pollMs = options.pollMs ?? defaultPollMs;
  const redisOutageMs = options.redisOutageMs ?? defaultRedisOutageMs;
  const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
  let lastKey: string | undefined;
  let last: MigrationStatusReport | undefined;
  let outageSince: number | undefined;
  let finalSeenAt: number | undefined;

  for (;;) {
    try {
      last = await getMigrationStatus(queue, jobId);
      outageSince = undefined;
    } catch (error) {
      if (!isFerryError(error, 'REDIS_UNAVAILABLE')) throw error;
      outageSince ??= Date.now();
      if (Date.now() - outageSince >= redisOutageMs) throw error;
    }

    if (last !== undefined) {
      const key = changeKey(last);
      if (key !== lastKey) {
        lastKey = key;
        options.onProgress?.(last);
      }
      // A job BullMQ failed on its own (one that stalled too often) gets its result from the
      // worker's 'failed' handler a moment later; give that record a few seconds to appear.
      const recordPending =
        last.result === undefined &&
        last.state === 'failed' &&
        Date.now() < (finalSeenAt ??= Date.now()) + 3000;
      if (isFinalState(last.state) && !recordPending) return last;
    }

    const left = deadline - Date.now();
    if (left <= 0) {
      if (last !== undefined) return last;
      throw queue.mapRedisError(new Error('no status was read before the timeout'));
    }
    await sleep(Math.min(pollMs, left));
  }
}

import { FerryError } from '../errors.js';
import type { MigrationResult, MigrationStatus } from '../types.js';
import { getMigrationStatus } from './producer.js';
import type { MigrationJob, MigrationQueue } from './queue.js';
import { requestFields } from './results.js';

/** Outcome of a cancel request. */
export type CancelOutcome =
  /** The job was waiting or postponed and is removed, with the result status `cancelled`. */
  | 'cancelled'
  /** The job is running. Its worker received the request and aborts, reconciles and publishes the result. */
  | 'cancelling'
  /** The job had already ended; nothing changed. */
  | 'already-ended';

/** Redis key whose presence marks a running job as cancelled for its worker. */
export function cancelKey(prefix: string, jobId: string): string {
  return `${prefix}:cancel:${jobId}`;
}

/** Pub/sub channel on which workers hear about cancelled jobs at once. */
export function cancelChannel(prefix: string): string {
  return `${prefix}:cancel`;
}

/**
 * Cancels a migration job. A waiting or postponed job is removed and gets a `cancelled`
 * result. For a running job, the request is stored in Redis and announced on the cancel
 * channel, so the worker that runs it, on whichever bastion, aborts and reconciles; the
 * final status then reports where the VM really is. Throws JOB_NOT_FOUND for an unknown id.
 */
export async function cancelMigration(
  queue: MigrationQueue,
  jobId: string,
  requestedBy: string,
): Promise<{ outcome: CancelOutcome; status?: MigrationStatus }> {
  const report = await getMigrationStatus(queue, jobId);
  if (report.result !== undefined) return { outcome: 'already-ended', status: report.result.status };

  const job = (await queue.queue.getJob(jobId)) as MigrationJob | undefined;
  if (job === undefined) {
    throw new FerryError('JOB_NOT_FOUND', `No migration job '${jobId}' to cancel.`, { context: { jobId } });
  }
  try {
    const state = await job.getState();
    if (
      state === 'waiting' ||
      state === 'delayed' ||
      state === 'prioritized' ||
      state === 'waiting-children'
    ) {
      // remove() fails on a job a worker has locked, so a job taken in the meantime is
      // cancelled as a running one below.
      await job.remove();
      await queue.results.publish(cancelledResult(job, requestedBy));
      return { outcome: 'cancelled', status: 'cancelled' };
    }
    if (state === 'completed' || state === 'failed') return { outcome: 'already-ended' };
  } catch (error) {
    if (!/locked|active/i.test((error as Error).message)) throw queue.mapRedisError(error);
  }

  const retentionSeconds = Math.ceil(queue.retentionMs / 1000);
  await queue.connection.set(cancelKey(queue.prefix, jobId), requestedBy, 'EX', retentionSeconds);
  await queue.connection.publish(cancelChannel(queue.prefix), jobId);
  return { outcome: 'cancelling' };
}

function cancelledResult(job: MigrationJob, requestedBy: string): MigrationResult {
  const now = new Date().toISOString();
  const request = job.data;
  return {
    ...requestFields(job.id ?? '', request),
    status: 'cancelled',
    phaseMs: {},
    attempts: job.attemptsMade,
    bastion: '',
    startedAt: now,
    finishedAt: now,
    error: {
      code: 'CANCELLED',
      message: `Cancelled by ${requestedBy} before it started; the VM was not touched.`,
    },
  };
}

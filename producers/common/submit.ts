/**
 * The one path by which the front ends queue a migration: validate, check the identity's hosts,
 * return the existing job for a repeated request, queue, and register the result delivery.
 * Everything that can reject the request runs before the job is queued.
 */
import type { Inventory } from '../../src/config/inventory.js';
import { isFerryError } from '../../src/errors.js';
import { enqueueMigration, getMigrationStatus, isFinalState } from '../../src/jobs/producer.js';
import type { MigrationQueue } from '../../src/jobs/queue.js';
import { quoteValue } from '../../src/jobs/quote.js';
import { validateRequest } from '../../src/jobs/request.js';
import type { CallbackStore, DeliveryTarget } from '../callbacks/store.js';
import { requestFingerprint, type DuplicateGuard } from './duplicates.js';
import { ProducerError } from './errors.js';
import { checkHostRights, type ProducerIdentity } from './identity.js';

export interface SubmitDependencies {
  queue: MigrationQueue;
  inventory: Inventory;
  guard: DuplicateGuard;
  callbacks: CallbackStore;
}

export interface SubmitOptions {
  /** The request's Idempotency-Key, already checked with `checkIdempotencyKey`. */
  idempotencyKey?: string;
  /** Delivery target of the result once the job ends, already checked against its allow-list. */
  delivery?: DeliveryTarget;
}

export interface Submission {
  jobId: string;
  /** False when the request repeated an earlier one and `jobId` is that request's job. */
  created: boolean;
}

/** Idempotency-Key values: 1 to 255 visible ASCII characters, such as a UUID. */
const idempotencyKeyPattern = /^[\x21-\x7e]{1,255}$/;

/** Returns the header's value, or throws INVALID_REQUEST naming the header. */
export function checkIdempotencyKey(value: unknown): string {
  if (typeof value === 'string' && idempotencyKeyPattern.test(value)) return value;
  throw new ProducerError(
    'INVALID_REQUEST',
    `Idempotency-Key is invalid (got ${quoteValue(value)}): use 1 to 255 visible ASCII characters, such as a UUID.`,
    { fields: ['Idempotency-Key'] },
  );
}

async function isActive(queue: MigrationQueue, jobId: string): Promise<boolean> {
  try {
    return !isFinalState((await getMigrationStatus(queue, jobId)).state);
  } catch (error) {
    if (isFerryError(error, 'JOB_NOT_FOUND')) return false;
    throw error;
  }
}

/**
 * Queues the migration that `input` requests on behalf of `identity`, whose name becomes the
 * requester. With an Idempotency-Key, a repeat returns the job of the first request. Without
 * one, a request for the same VM, hosts and ticket returns the job still queued or running.
 *
 * Throws FerryError INVALID_REQUEST or UNKNOWN_HOST for a bad request, ProducerError FORBIDDEN
 * for a host the identity may not use, CONFLICT or IDEMPOTENCY_KEY_REUSED for a repeat that
 * cannot be answered yet, and REDIS_UNAVAILABLE when Redis is down.
 */
export async function submitMigration(
  deps: SubmitDependencies,
  identity: ProducerIdentity,
  input: Record<string, unknown>,
  options: SubmitOptions = {},
): Promise<Submission> {
  const request = validateRequest({ ...input, requester: identity.name }, deps.inventory);
  checkHostRights(identity, request);

  const outcome =
    options.idempotencyKey === undefined
      ? await deps.guard.reserveMigration(request, (jobId) => isActive(deps.queue, jobId))
      : await deps.guard.reserveIdempotencyKey(
          identity.name,
          options.idempotencyKey,
          requestFingerprint({ request, delivery: options.delivery }),
        );
  if (outcome.kind === 'existing') return { jobId: outcome.jobId, created: false };

  let jobId: string;
  try {
    ({ jobId } = await enqueueMigration(deps.queue, deps.inventory, request));
  } catch (error) {
    await outcome.reservation.release().catch(() => undefined);
    throw error;
  }

  // NOTE: the job is queued from here on. If Redis fails in the next two steps, the caller gets
  // an error for a queued job. A retry within the reservation's 30 s gets CONFLICT, and a later
  // retry queues a second job.
  if (options.delivery !== undefined) await deps.callbacks.register(jobId, options.delivery);
  await outcome.reservation.commit(jobId);
  return { jobId, created: true };
}

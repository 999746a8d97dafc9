/**
 * The scheduler's event stream (`<prefix>:locks:events`, about the last 10,000 events), for
 * operators and for measuring the hand-over gap: the time from a release that frees a slot to
 * the start of the waiting migration that gets it. All times are Redis times in milliseconds.
 *
 * Event types:
 * - `waiting`: a job entered the queue. `granted`: it got its whole set.
 * - `reclaimed`: a job taken over by another worker kept its locks.
 * - `started`: the job passed the in-flight check and its attempt begins.
 * - `released`: a holder gave its set back. `left`: a waiting job gave up its place.
 * - `expired`: a lease ran out. `lost`: a renewal found the lease gone.
 * - `abandoned`: a waiter's place ran out because its worker stopped refreshing it.
 */
import type { Redis } from 'ioredis';

import { lockKeys } from './store.js';

export interface LockEvent {
  /** Stream entry id. */
  id: string;
  type: string;
  jobId: string;
  at: number;
  /** Further fields of the event, such as `releasedBy` or `resource`. */
  fields: Record<string, string>;
}

/** One hand-over: a release whose freed slots went to a waiting job, and that job's start. */
export interface Handover {
  releasedBy: string;
  jobId: string;
  releasedAt: number;
  /** Redis time at which the waiting job's worker confirmed the grant. */
  confirmedAt: number;
  startedAt: number;
  /** startedAt - releasedAt. */
  gapMs: number;
}

/** Reads the newest `count` events (default all that are kept), oldest first. */
export async function readLockEvents(redis: Redis, prefix: string, count?: number): Promise<LockEvent[]> {
  const key = lockKeys(prefix).events;
  const entries =
    count === undefined
      ? await redis.xrange(key, '-', '+')
      : (await redis.xrevrange(key, '+', '-', 'COUNT', count)).reverse();
  return entries.map(([id, flat]) => {
    const fields: Record<string, string> = {};
    for (let index = 0; index + 1 < flat.length; index += 2) {
      fields[flat[index] as string] = flat[index + 1] as string;
    }
    const { type = '', job = '', at = '0', ...rest } = fields;
    return { id, type, jobId: job, at: Number(at), fields: rest };
  });
}

/** Returns every hand-over that the `started` events record, in the order of the events. */
export function handovers(events: LockEvent[]): Handover[] {
  const found: Handover[] = [];
  for (const event of events) {
    if (event.type !== 'started') continue;
    const releasedBy = event.fields.releasedBy ?? '';
    const releasedAt = Number(event.fields.releasedAt);
    if (releasedBy === '' || !Number.isFinite(releasedAt) || releasedAt === 0) continue;
    found.push({
      releasedBy,
      jobId: event.jobId,
      releasedAt,
      confirmedAt: Number(event.fields.confirmedAt),
      startedAt: event.at,
      gapMs: event.at - releasedAt,
    });
  }
  return found;
}

/**
 * Keeps a repeated request from queueing a second migration.
 *
 * Two keys per request kind, both under `<prefix>:api:`:
 * - `idempotency:<hash of requester and Idempotency-Key>`: the job that key created, with a
 *   fingerprint of the request, kept for the result retention. A repeat with the same key and the
 *   same request returns that job; the same key with another request is rejected.
 * - `active:<hash of requester, VM, source, target and ticket>`: the last job queued for that
 *   combination. A request without an Idempotency-Key returns that job while it is queued or
 *   running, and queues a new one once it has ended.
 *
 * A key is first reserved with a `pending` value (SET NX with a short expiry), then the job is
 * queued, then the key is set to the job id. A second request that finds `pending` gets CONFLICT
 * and retries; a producer that dies in between leaves a reservation that expires by itself.
 */
import { createHash, randomUUID } from 'node:crypto';

import type { Redis } from 'ioredis';

import { quoteValue } from '../../src/jobs/quote.js';
import { ProducerError } from './errors.js';

/** How long a reservation stays while its job is being queued, in milliseconds (30 s). */
export const defaultReservationMs = 30_000;

type SlotValue =
  | { state: 'pending'; nonce: string; fingerprint: string }
  | { state: 'queued'; jobId: string; fingerprint: string };

/** A reserved key: `commit` records the queued job, `release` frees the key after a failure. */
export interface Reservation {
  commit(jobId: string): Promise<void>;
  release(): Promise<void>;
}

export type GuardOutcome =
  { kind: 'reserved'; reservation: Reservation } | { kind: 'existing'; jobId: string };

/** The parts of a request that make two requests the same migration. */
export interface MigrationIdentity {
  requester: string;
  vm: string;
  source: string;
  target: string;
  ticket?: string;
}

// KEYS: key. ARGV: expected value, new value, expiry in ms. Replaces the value only if unchanged.
const replaceIfEqualScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`;

// KEYS: key. ARGV: expected value. Deletes the key only if it still contains this reservation.
const deleteIfEqualScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

/** JSON with object keys sorted, so that equal requests give equal fingerprints. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, entry]) => entry !== undefined)
      // Code-unit order, the same on every machine (localeCompare depends on the locale).
      .sort(([a], [b]) => compareKeys(a, b));
    return `{${entries.map(([key, entry]) => `${JSON.stringify(key)}:${canonicalJson(entry)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Fingerprint of a request, to tell a repeat from another request under the same key. */
export function requestFingerprint(request: unknown): string {
  return sha256(canonicalJson(request));
}

function parseSlot(text: string | null): SlotValue | undefined {
  if (text === null) return undefined;
  try {
    const value = JSON.parse(text) as SlotValue;
    return value.state === 'pending' || value.state === 'queued' ? value : undefined;
  } catch {
    return undefined;
  }
}

export class DuplicateGuard {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #retentionMs: number;
  readonly #reservationMs: number;

  constructor(redis: Redis, options: { prefix: string; retentionMs: number; reservationMs?: number }) {
    this.#redis = redis;
    this.#prefix = options.prefix;
    this.#retentionMs = options.retentionMs;
    this.#reservationMs = options.reservationMs ?? defaultReservationMs;
  }

  /**
   * Reserves an Idempotency-Key for a request. Returns the job the key created before when the
   * request is the same. Throws IDEMPOTENCY_KEY_REUSED when the request differs, and CONFLICT
   * while the first request with this key is still being queued.
   */
  async reserveIdempotencyKey(requester: string, key: string, fingerprint: string): Promise<GuardOutcome> {
    const redisKey = `${this.#prefix}:api:idempotency:${sha256(`${requester}\n${key}`)}`;
    const reservation = await this.#reserve(redisKey, fingerprint);
    if (reservation.kind === 'reserved') return reservation;

    const { slot } = reservation;
    if (slot.fingerprint !== fingerprint) {
      throw new ProducerError(
        'IDEMPOTENCY_KEY_REUSED',
        `Idempotency-Key ${quoteValue(key)} was used before with a different request: send a new key with a new request.`,
        { fields: ['Idempotency-Key'] },
      );
    }
    if (slot.state === 'pending') throw this.#inProgress(`Idempotency-Key ${quoteValue(key)}`);
    return { kind: 'existing', jobId: slot.jobId };
  }

  /**
   * Reserves the combination of requester, VM, hosts and ticket. Returns the job queued for it
   * while `isActive` returns true for that job; otherwise reserves it for a new job. Throws
   * CONFLICT while another request for the same migration is being queued.
   */
  async reserveMigration(
    migration: MigrationIdentity,
    isActive: (jobId: string) => Promise<boolean>,
  ): Promise<GuardOutcome> {
    const parts = [
      migration.requester,
      migration.vm,
      migration.source,
      migration.target,
      migration.ticket ?? '',
    ];
    const redisKey = `${this.#prefix}:api:active:${sha256(parts.join('\n'))}`;
    const fingerprint = requestFingerprint(parts);
    const reservation = await this.#reserve(redisKey, fingerprint);
    if (reservation.kind === 'reserved') return reservation;

    const { slot, raw } = reservation;
    const what = `the migration of ${migration.vm} from ${migration.source} to ${migration.target}`;
    if (slot.state === 'pending') throw this.#inProgress(what);
    if (await isActive(slot.jobId)) return { kind: 'existing', jobId: slot.jobId };

    // The last job for this combination has ended: take the key over for a new one, unless
    // another request did so since it was read.
    const value = this.#pendingValue(fingerprint);
    const replaced = await this.#redis.eval(
      replaceIfEqualScript,
      1,
      redisKey,
      raw,
      value,
      String(this.#reservationMs),
    );
    if (replaced !== 1) throw this.#inProgress(what);
    return { kind: 'reserved', reservation: this.#reservation(redisKey, value, fingerprint) };
  }

  async #reserve(
    redisKey: string,
    fingerprint: string,
  ): Promise<
    { kind: 'reserved'; reservation: Reservation } | { kind: 'taken'; slot: SlotValue; raw: string }
  > {
    for (let tries = 0; tries < 3; tries += 1) {
      const value = this.#pendingValue(fingerprint);
      const set = await this.#redis.set(redisKey, value, 'PX', this.#reservationMs, 'NX');
      if (set === 'OK') {
        return { kind: 'reserved', reservation: this.#reservation(redisKey, value, fingerprint) };
      }

      const raw = await this.#redis.get(redisKey);
      const slot = parseSlot(raw);
      if (raw !== null && slot !== undefined) return { kind: 'taken', slot, raw };
      // The key expired between SET and GET, or contains something this code did not write.
      // An unreadable value is dropped before the next try.
      if (raw !== null) await this.#redis.eval(deleteIfEqualScript, 1, redisKey, raw);
    }
    throw this.#inProgress('this request');
  }

  #pendingValue(fingerprint: string): string {
    return JSON.stringify({ state: 'pending', nonce: randomUUID(), fingerprint } satisfies SlotValue);
  }

  #reservation(redisKey: string, pendingValue: string, fingerprint: string): Reservation {
    return {
      commit: async (jobId) => {
        const value = JSON.stringify({ state: 'queued', jobId, fingerprint } satisfies SlotValue);
        await this.#redis.set(redisKey, value, 'PX', this.#retentionMs);
      },
      release: async () => {
        await this.#redis.eval(deleteIfEqualScript, 1, redisKey, pendingValue);
      },
    };
  }

  #inProgress(what: string): ProducerError {
    return new ProducerError(
      'CONFLICT',
      `A request for ${what} is being queued right now: retry in a second to get its job.`,
      { headers: { 'Retry-After': '1' } },
    );
  }
}

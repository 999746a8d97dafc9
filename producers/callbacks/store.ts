/**
 * Durable list of result deliveries still owed to requesters, in Redis beside the queue:
 * - `<prefix>:api:callbacks`: sorted set of deliveries, scored by the time (ms) each is next due.
 * - `<prefix>:api:callback:<member>`: the delivery (kind, URL, attempts) as JSON, expiring after
 *   the result retention.
 *
 * A member is `<jobId>:<kind>`, so that one job can owe one delivery of each kind. Claiming a due
 * delivery pushes its score forward by a lease instead of removing it: if the API process dies
 * while delivering, the delivery becomes due again when the lease ends, on any API process.
 */
import type { Redis } from 'ioredis';

/** Kind of a delivery: a signed result (`webhook`) or a chat message (`slack`). */
export type DeliveryKind = 'webhook' | 'slack';

export interface DeliveryTarget {
  kind: DeliveryKind;
  url: string;
}

export interface DeliveryRecord extends DeliveryTarget {
  jobId: string;
  /** Delivery attempts made so far (not counting the checks for a result). */
  attempts: number;
  createdAt: string;
  lastError?: string;
  /** Set when the delivery was given up after its last attempt. */
  abandonedAt?: string;
}

// KEYS: the sorted set. ARGV: now ms, lease ms, max count. Returns the due members, each pushed
// forward by the lease.
const claimScript = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], until_ms, member)
end
return due
`;

export class CallbackStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #retentionMs: number;

  /** Uses `redis` without owning it. */
  constructor(redis: Redis, options: { prefix: string; retentionMs: number }) {
    this.#redis = redis;
    this.#prefix = options.prefix;
    this.#retentionMs = options.retentionMs;
  }

  get #setKey(): string {
    return `${this.#prefix}:api:callbacks`;
  }

  #recordKey(member: string): string {
    return `${this.#prefix}:api:callback:${member}`;
  }

  /** Adds a delivery of the job's result, due at once. */
  async register(jobId: string, target: DeliveryTarget): Promise<void> {
    const member = `${jobId}:${target.kind}`;
    const record: DeliveryRecord = { ...target, jobId, attempts: 0, createdAt: new Date().toISOString() };
    await this.#redis
      .multi()
      .set(this.#recordKey(member), JSON.stringify(record), 'PX', this.#retentionMs)
      .zadd(this.#setKey, Date.now(), member)
      .exec();
  }

  /** Claims up to `count` due deliveries for `leaseMs`; returns their members. */
  async claimDue(count: number, leaseMs: number, now = Date.now()): Promise<string[]> {
    const members = await this.#redis.eval(
      claimScript,
      1,
      this.#setKey,
      String(now),
      String(leaseMs),
      String(count),
    );
    return Array.isArray(members)
      ? members.filter((member): member is string => typeof member === 'string')
      : [];
  }

  async get(member: string): Promise<DeliveryRecord | undefined> {
    const text = await this.#redis.get(this.#recordKey(member));
    if (text === null) return undefined;
    try {
      return JSON.parse(text) as DeliveryRecord;
    } catch {
      return undefined;
    }
  }

  /** Stores the updated record and makes the delivery due again at `dueAt` (ms). */
  async reschedule(member: string, record: DeliveryRecord, dueAt: number): Promise<void> {
    await this.#redis
      .multi()
      .set(this.#recordKey(member), JSON.stringify(record), 'PX', this.#retentionMs)
      .zadd(this.#setKey, dueAt, member)
      .exec();
  }

  /** Removes a delivered (or no longer deliverable) entry. */
  async complete(member: string): Promise<void> {
    await this.#redis.multi().zrem(this.#setKey, member).del(this.#recordKey(member)).exec();
  }

  /** Stops retrying a delivery; its record stays readable until it expires, for inspection. */
  async abandon(member: string, record: DeliveryRecord): Promise<void> {
    const abandoned: DeliveryRecord = { ...record, abandonedAt: new Date().toISOString() };
    await this.#redis
      .multi()
      .zrem(this.#setKey, member)
      .set(this.#recordKey(member), JSON.stringify(abandoned), 'PX', this.#retentionMs)
      .exec();
  }

  /** Deliveries still owed, due or not. */
  async pendingCount(): Promise<number> {
    return this.#redis.zcard(this.#setKey);
  }
}

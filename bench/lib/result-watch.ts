/**
 * Notices each published result the moment it becomes readable, by a blocking read of the
 * requester's result stream (the stream `ferry results` reads), instead of polling.
 */
import { Redis } from 'ioredis';

import { resultStreamKey } from '../../src/jobs/results.js';

export interface ReadableResult {
  jobId: string;
  status: string;
  /** Epoch milliseconds when the blocking read returned the entry. */
  readableAt: number;
}

export class ResultWatcher {
  #lastId: string;

  private constructor(
    readonly redis: Redis,
    readonly key: string,
    lastId: string,
  ) {
    this.#lastId = lastId;
  }

  /** Starts watching after the newest entry of the requester's stream. */
  static async open(redisUrl: string, prefix: string, requester: string): Promise<ResultWatcher> {
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
    await redis.connect();
    const key = resultStreamKey(prefix, requester);
    const newest = await redis.xrevrange(key, '+', '-', 'COUNT', 1);
    return new ResultWatcher(redis, key, newest[0]?.[0] ?? '0-0');
  }

  /** Waits for the next published result; throws after `timeoutMs` without one. */
  async next(timeoutMs: number): Promise<ReadableResult> {
    const reply = await this.redis.xread('COUNT', 1, 'BLOCK', timeoutMs, 'STREAMS', this.key, this.#lastId);
    const readableAt = Date.now();
    const entry = reply?.[0]?.[1][0];
    if (entry === undefined) throw new Error(`No result was published within ${timeoutMs} ms.`);
    const [id, fields] = entry;
    this.#lastId = id;
    return resultOf(fields, readableAt);
  }

  /**
   * Waits until `count` more results were published and returns them; the last one's
   * readableAt is when the last result became readable. Throws after `timeoutMs` without a
   * new result.
   */
  async collect(count: number, timeoutMs: number): Promise<ReadableResult[]> {
    const results: ReadableResult[] = [];
    while (results.length < count) {
      const reply = await this.redis.xread(
        'COUNT',
        count - results.length,
        'BLOCK',
        timeoutMs,
        'STREAMS',
        this.key,
        this.#lastId,
      );
      const readableAt = Date.now();
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) {
        throw new Error(
          `Only ${results.length} of ${count} results were published; none in the last ${timeoutMs} ms.`,
        );
      }
      for (const [id, fields] of entries) {
        this.#lastId = id;
        results.push(resultOf(fields, readableAt));
      }
    }
    return results;
  }

  close(): void {
    this.redis.disconnect();
  }
}

function resultOf(fields: string[], readableAt: number): ReadableResult {
  const field = (name: string): string => fields[fields.indexOf(name) + 1] ?? '';
  return { jobId: field('jobId'), status: field('status'), readableAt };
}

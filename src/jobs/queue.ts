/**
 * The migration queue as producers open it, and the names workers and producers share.
 *
 * BullMQ keeps the queue under `<prefix>:migrations:*`; the durable results live beside it
 * under `<prefix>:result:*` and `<prefix>:results:*` (see results.ts).
 */
import { Queue, type Job } from 'bullmq';
import type { Redis } from 'ioredis';

import { FerryError } from '../errors.js';
import type { MigrationResult } from '../types.js';
import {
  createRedisConnection,
  defaultProducerConnectTimeoutMs,
  redactRedisUrl,
  redisUnavailable,
  waitForRedis,
} from './connection.js';
import { quoteValue } from './quote.js';
import type { MigrationRequest } from './request.js';
import { defaultResultRetentionMs, ResultStore } from './results.js';

export { createRedisConnection, redactRedisUrl, waitForRedis, type RedisRole } from './connection.js';

export const queueName = 'migrations';
export const migrateJobName = 'migrate';
export const defaultPrefix = 'ferry';
export const defaultRedisUrl = 'redis://127.0.0.1:6379';
/**
 * Key prefixes are names without `:`, so that they cannot reach into another prefix's keys. A
 * name in braces (`{ferry}`) is a Redis Cluster hash tag: it puts all of ferry's keys in one slot.
 */
export const prefixPattern = /^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63}|\{[A-Za-z0-9][A-Za-z0-9._-]{0,63}\})$/;
/** BullMQ backoff type of migration jobs: the worker's backoffStrategy computes each delay. */
export const retryBackoffType = 'custom';

/** Job data: the validated request and the time it was queued (ISO 8601). */
export type MigrationJobData = MigrationRequest & { enqueuedAt: string };
export type MigrationJob = Job<MigrationJobData, MigrationResult, typeof migrateJobName>;
export type MigrationBullQueue = Queue<MigrationJobData, MigrationResult, typeof migrateJobName>;

export interface OpenMigrationQueueOptions {
  redisUrl: string;
  /** Key prefix of the queue and the results. Default 'ferry'. */
  prefix?: string;
  /** How long finished jobs and results are kept, in milliseconds. Default 7 days. */
  retentionMs?: number;
  /** How long to wait for Redis before failing with REDIS_UNAVAILABLE, in milliseconds. Default 2 s. */
  connectTimeoutMs?: number;
}

/** A producer's handle on the queue and the result store, sharing one Redis connection. */
export interface MigrationQueue {
  readonly queue: MigrationBullQueue;
  readonly results: ResultStore;
  readonly connection: Redis;
  readonly prefix: string;
  /** The Redis URL with any password masked. */
  readonly redisUrl: string;
  readonly retentionMs: number;
  /** Maps an error from a Redis command to REDIS_UNAVAILABLE when the connection is down; returns others as they are. */
  mapRedisError(error: unknown): unknown;
  close(): Promise<void>;
}

/** Throws INVALID_CONFIG unless `prefix` matches `prefixPattern`. */
export function checkPrefix(prefix: string): void {
  if (!prefixPattern.test(prefix)) {
    throw new FerryError(
      'INVALID_CONFIG',
      `Invalid prefix ${quoteValue(prefix)}: use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit, optionally in braces.`,
      { context: { field: 'prefix' } },
    );
  }
}

/**
 * Opens the migration queue for a producer. Fails with REDIS_UNAVAILABLE, naming the URL, when
 * Redis does not accept the connection within `connectTimeoutMs`, and with INVALID_CONFIG on a
 * bad URL or prefix.
 */
export async function openMigrationQueue(options: OpenMigrationQueueOptions): Promise<MigrationQueue> {
  const prefix = options.prefix ?? defaultPrefix;
  checkPrefix(prefix);
  const retentionMs = options.retentionMs ?? defaultResultRetentionMs;
  const url = options.redisUrl;

  const connection = createRedisConnection(url, 'producer');
  try {
    await waitForRedis(connection, url, options.connectTimeoutMs ?? defaultProducerConnectTimeoutMs);
  } catch (error) {
    connection.disconnect();
    throw error;
  }

  // The queue uses the connection without owning it, so close() below disconnects it.
  const queue: MigrationBullQueue = new Queue(queueName, { connection, prefix });
  // Queue errors reach the caller through the rejected commands; this keeps them off stderr.
  queue.on('error', () => {});
  const results = new ResultStore(connection, { prefix, retentionMs });

  const mapRedisError = (error: unknown): unknown =>
    connection.status === 'ready' ? error : redisUnavailable(connection, url, error);

  try {
    await queue.waitUntilReady();
  } catch (error) {
    connection.disconnect();
    throw mapRedisError(error);
  }

  return {
    queue,
    results,
    connection,
    prefix,
    redisUrl: redactRedisUrl(url),
    retentionMs,
    mapRedisError,
    close: async () => {
      await results.close();
      try {
        await queue.close();
      } finally {
        connection.disconnect();
      }
    },
  };
}

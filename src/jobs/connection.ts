/**
 * Redis connections for the two sides of the queue.
 *
 * A worker waits out a Redis restart: its commands queue up and retry forever, as BullMQ
 * requires for blocking connections. A producer (the CLI, an HTTP API) must return to its caller
 * quickly instead, so its connection rejects commands while Redis is unreachable, and opening
 * it fails with REDIS_UNAVAILABLE after a short wait.
 */
import { Redis, type RedisOptions } from 'ioredis';

import { FerryError } from '../errors.js';

export type RedisRole = 'worker' | 'producer';

/** How long a producer waits for Redis to accept a connection, in milliseconds (2 s). */
export const defaultProducerConnectTimeoutMs = 2_000;

const lastErrors = new WeakMap<Redis, Error>();

/** Returns the URL with any password replaced by `***`, for messages and logs. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

function checkRedisUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new FerryError(
      'INVALID_CONFIG',
      'Invalid Redis URL: use the form redis://HOST:PORT or rediss://HOST:PORT.',
      {
        context: { field: 'redisUrl' },
      },
    );
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new FerryError(
      'INVALID_CONFIG',
      `Invalid Redis URL ${redactRedisUrl(url)}: the scheme must be redis:// or rediss://.`,
      { context: { field: 'redisUrl' } },
    );
  }
}

function optionsFor(role: RedisRole): RedisOptions {
  if (role === 'worker') {
    // BullMQ's blocking commands need retries without a limit; reconnects back off up to 2 s.
    return { maxRetriesPerRequest: null, retryStrategy: (times) => Math.min(times * 100, 2_000) };
  }
  return {
    enableOfflineQueue: false,
    connectTimeout: defaultProducerConnectTimeoutMs,
    maxRetriesPerRequest: 1,
    // Reconnecting goes on in the background, so that a long-lived producer recovers once Redis
    // is back. Until then its commands fail at once, because the offline queue is off.
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    // ioredis 5.9 arms this timer on disconnect() even when the socket is already closed, and
    // the timer keeps the process alive: 2 s by default, a delay on every failed CLI run.
    disconnectTimeout: 500,
  };
}

/**
 * Creates an ioredis connection for a worker or a producer. It starts connecting at once.
 * Throws INVALID_CONFIG when the URL is not a redis:// or rediss:// URL.
 */
export function createRedisConnection(url: string, role: RedisRole): Redis {
  checkRedisUrl(url);
  const connection = new Redis(url, optionsFor(role));
  // A listener is needed anyway: without one, ioredis prints every connection error to the
  // console. The last error goes into the REDIS_UNAVAILABLE message.
  connection.on('error', (error: Error) => lastErrors.set(connection, error));
  return connection;
}

/** Builds the REDIS_UNAVAILABLE error for a connection, with its last connection error. */
export function redisUnavailable(connection: Redis, url: string, cause?: unknown): FerryError {
  const lastError = lastErrors.get(connection) ?? (cause instanceof Error ? cause : undefined);
  const detail = lastError === undefined ? '' : ` (${lastError.message})`;
  return new FerryError(
    'REDIS_UNAVAILABLE',
    `Redis at ${redactRedisUrl(url)} is unavailable${detail}. Start Redis there, or pass --redis URL or set FERRY_REDIS_URL.`,
    { cause: lastError ?? cause, context: { redisUrl: redactRedisUrl(url) } },
  );
}

/**
 * Waits until the connection is ready. Throws REDIS_UNAVAILABLE, naming the URL, when it is not
 * ready within `timeoutMs` or when it has ended for good.
 */
export async function waitForRedis(
  connection: Redis,
  url: string,
  timeoutMs = defaultProducerConnectTimeoutMs,
): Promise<void> {
  if (connection.status === 'ready') return;
  if (connection.status === 'end') throw redisUnavailable(connection, url);

  await new Promise<void>((resolve, reject) => {
    const cleanUp = (): void => {
      clearTimeout(timer);
      connection.off('ready', onReady);
      connection.off('end', onEnd);
    };
    const onReady = (): void => {
      cleanUp();
      resolve();
    };
    const onEnd = (): void => {
      cleanUp();
      reject(redisUnavailable(connection, url));
    };
    const timer = setTimeout(onEnd, timeoutMs);
    connection.on('ready', onReady);
    connection.on('end', onEnd);
  });
}

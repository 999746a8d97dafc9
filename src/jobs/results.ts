/**
 * Durable results of finished migrations, per requester.
 *
 * Redis keys (prefix `ferry` by default):
 * - `<prefix>:result:<jobId>`: the MigrationResult as JSON, expiring after the retention.
 * - `<prefix>:results:<requester>`: a stream with one entry per published result (fields
 *   `jobId`, `status`, `result`), trimmed to the retention and to an approximate length, and
 *   expiring when nothing was published for the retention.
 * - consumer group `ferry-results` on each requester's stream: the entries that requester has
 *   not acknowledged yet. The group reads from the stream's start, so a requester that was
 *   offline when its results were published still reads them.
 *
 * BullMQ's own event stream is trimmed and is not read here: a result exists only once the
 * worker publishes it.
 */
import type { Redis } from 'ioredis';

import { FerryError } from '../errors.js';
import { waitForRedis } from './connection.js';
import { migrationStatuses, type MigrationResult } from '../types.js';
import { quoteValue } from './quote.js';
import { requesterPattern, type MigrationRequest } from './request.js';

/** How long results stay readable, in milliseconds (7 days). */
export const defaultResultRetentionMs = 7 * 24 * 60 * 60_000;
/** Approximate maximum entries kept in one requester's stream. */
export const defaultMaxEntriesPerRequester = 10_000;
/** Consumer group that tracks what each requester has acknowledged. */
export const resultsGroup = 'ferry-results';
/** Consumer name used when the reader gives none. */
export const defaultResultsConsumer = 'reader';
/** Entries returned by one read when the caller gives no count. */
export const defaultReadCount = 100;

export interface ResultStoreOptions {
  /** Key prefix shared with the queue. Default 'ferry'. */
  prefix?: string;
  /** How long a result stays readable, in milliseconds. Default 7 days. */
  retentionMs?: number;
  /** Approximate cap on the entries of one requester's stream. Default 10 000. */
  maxEntriesPerRequester?: number;
}

export interface ReadResultsOptions {
  /** Maximum entries to return. Default 100. */
  count?: number;
  /** Wait up to this many milliseconds for a new entry when none is pending. Default: no wait. */
  blockMs?: number;
  /** Consumer name within the requester's group. Default 'reader'. */
  consumer?: string;
}

/** One result as a requester reads it; `entryId` is what `ack` takes. */
export interface ResultEntry {
  entryId: string;
  result: MigrationResult;
}

export function resultKey(prefix: string, jobId: string): string {
  return `${prefix}:result:${jobId}`;
}

export function resultStreamKey(prefix: string, requester: string): string {
  return `${prefix}:results:${requester}`;
}

// Stores the record and appends it to the requester's stream in one step, so that a reader
// never sees one without the other. Publishing the same record again (a worker that repeats its
// last step after a restart) only renews the record's expiry and adds no second entry.
// KEYS: record, stream. ARGV: json, retentionMs, minId, maxEntries, jobId, status.
// On Redis Cluster both keys must hash to one slot: use a prefix in braces, such as {ferry}.
const publishScript = `
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if previous == ARGV[1] then
  return ''
end
local id = redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[3], '*', 'jobId', ARGV[5], 'status', ARGV[6], 'result', ARGV[1])
redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return id
`;

type StreamEntry = [id: string, fields: string[] | null];

function checkRequester(requester: string): void {
  if (!requesterPattern.test(requester)) {
    throw new FerryError(
      'INVALID_REQUEST',
      `Invalid requester ${quoteValue(requester)}: use 1 to 128 letters, digits, ".", "_", "@", ":" or "-", starting with a letter or digit.`,
      { context: { field: 'requester' } },
    );
  }
}

function isMissingGroup(error: unknown): boolean {
  // Redis error replies start with their code; NOGROUP means the stream or its group is absent.
  return error instanceof Error && error.message.startsWith('NOGROUP');
}

function entriesOf(reply: unknown): StreamEntry[] {
  // XREADGROUP returns [[stream, [[id, [field, value, ...]], ...]]] or null.
  if (!Array.isArray(reply) || reply.length === 0) return [];
  const stream = reply[0] as [string, StreamEntry[]];
  return stream[1];
}

function fieldValue(fields: string[], name: string): string | undefined {
  for (let index = 0; index + 1 < fields.length; index += 2) {
    if (fields[index] === name) return fields[index + 1];
  }
  return undefined;
}

/** Parses a stored record; returns undefined for anything publish() did not write. */
function parseResult(json: string | null | undefined): MigrationResult | undefined {
  if (json === null || json === undefined) return undefined;
  let value: MigrationResult;
  try {
    value = JSON.parse(json) as MigrationResult;
  } catch {
    return undefined;
  }
  const valid = typeof value === 'object' && value !== null && migrationStatuses.includes(value.status);
  return valid ? value : undefined;
}

/** Reads and writes the durable result records and the per-requester result streams. */
export class ResultStore {
  readonly prefix: string;
  readonly retentionMs: number;
  readonly maxEntriesPerRequester: number;
  readonly #redis: Redis;
  // Blocking reads get their own connection, so that they do not hold up the queue's commands.
  #blockingRedis: Redis | undefined;

  /** Uses `redis` without owning it: `close()` leaves it open. */
  constructor(redis: Redis, options: ResultStoreOptions = {}) {
    this.#redis = redis;
    this.prefix = options.prefix ?? 'ferry';
    this.retentionMs = options.retentionMs ?? defaultResultRetentionMs;
    this.maxEntriesPerRequester = options.maxEntriesPerRequester ?? defaultMaxEntriesPerRequester;
    if (!Number.isInteger(this.retentionMs) || this.retentionMs < 1) {
      throw new FerryError(
        'INVALID_CONFIG',
        `Invalid retentionMs ${quoteValue(this.retentionMs)}: use a whole number of milliseconds above 0.`,
        {
          context: { field: 'retentionMs' },
        },
      );
    }
    if (!Number.isInteger(this.maxEntriesPerRequester) || this.maxEntriesPerRequester < 1) {
      throw new FerryError(
        'INVALID_CONFIG',
        `Invalid maxEntriesPerRequester ${quoteValue(this.maxEntriesPerRequester)}: use a whole number above 0.`,
        { context: { field: 'maxEntriesPerRequester' } },
      );
    }
  }

  /**
   * Stores the result of a finished job and appends it to its requester's stream. Returns false
   * when the identical record was already stored, in which case no stream entry is added.
   */
  async publish(result: MigrationResult): Promise<boolean> {
    checkRequester(result.requester);
    const json = JSON.stringify(result);
    const minId = `${Math.max(0, Date.now() - this.retentionMs)}-0`;
    const entryId = await this.#redis.eval(
      publishScript,
      2,
      resultKey(this.prefix, result.jobId),
      resultStreamKey(this.prefix, result.requester),
      json,
      String(this.retentionMs),
      minId,
      String(this.maxEntriesPerRequester),
      result.jobId,
      result.status,
    );
    return entryId !== '';
  }

  /** Returns the stored result of a job, or undefined when none was published or it expired. */
  async get(jobId: string): Promise<MigrationResult | undefined> {
    return parseResult(await this.#redis.get(resultKey(this.prefix, jobId)));
  }

  /**
   * Returns the requester's results that it has not acknowledged yet, oldest first: first those
   * this consumer read before without acknowledging them, then new ones. Waits up to
   * `blockMs` for a new one only when there is nothing to return at once.
   */
  async readForRequester(requester: string, options: ReadResultsOptions = {}): Promise<ResultEntry[]> {
    checkRequester(requester);
    const count = options.count ?? defaultReadCount;
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new FerryError(
        'INVALID_REQUEST',
        `Invalid count ${quoteValue(count)}: use a whole number above 0.`,
        {
          context: { field: 'count' },
        },
      );
    }
    const consumer = options.consumer ?? defaultResultsConsumer;
    const key = resultStreamKey(this.prefix, requester);

    const pending = await this.#readGroup(this.#redis, key, consumer, count, '0');
    const entries = await this.#keepReadable(requester, pending);
    if (entries.length >= count) return entries;

    const blockMs = entries.length === 0 ? (options.blockMs ?? 0) : 0;
    const connection = blockMs > 0 ? await this.#blockingConnection() : this.#redis;
    const fresh = await this.#readGroup(connection, key, consumer, count - entries.length, '>', blockMs);
    return [...entries, ...(await this.#keepReadable(requester, fresh))];
  }

  /** Marks entries as read for good; returns how many were pending. */
  async ack(requester: string, entryIds: readonly string[]): Promise<number> {
    checkRequester(requester);
    if (entryIds.length === 0) return 0;
    return this.#redis.xack(resultStreamKey(this.prefix, requester), resultsGroup, ...entryIds);
  }

  /** Closes the connection of blocking reads, if one was opened. */
  async close(): Promise<void> {
    const blocking = this.#blockingRedis;
    this.#blockingRedis = undefined;
    if (blocking !== undefined) blocking.disconnect();
  }

  async #readGroup(
    connection: Redis,
    key: string,
    consumer: string,
    count: number,
    from: '0' | '>',
    blockMs?: number,
  ): Promise<StreamEntry[]> {
    const read = async (): Promise<StreamEntry[]> => {
      const reply =
        blockMs === undefined || blockMs <= 0 || from === '0'
          ? await connection.xreadgroup('GROUP', resultsGroup, consumer, 'COUNT', count, 'STREAMS', key, from)
          : await connection.xreadgroup(
              'GROUP',
              resultsGroup,
              consumer,
              'COUNT',
              count,
              'BLOCK',
              blockMs,
              'STREAMS',
              key,
              from,
            );
      return entriesOf(reply);
    };
    try {
      return await read();
    } catch (error) {
      if (!isMissingGroup(error)) throw error;
    }
    // First read of this requester, or its stream expired: create the group at the stream's
    // start ('0'), so that the entries published before this first read are delivered too.
    await this.#createGroup(key);
    return read();
  }

  async #createGroup(key: string): Promise<void> {
    try {
      await this.#redis.xgroup('CREATE', key, resultsGroup, '0', 'MKSTREAM');
    } catch (error) {
      // BUSYGROUP: another reader created it in the meantime.
      if (!(error instanceof Error && error.message.startsWith('BUSYGROUP'))) throw error;
      return;
    }
    // MKSTREAM made an empty stream when nothing was published yet; let it expire like one.
    if ((await this.#redis.pttl(key)) === -1) await this.#redis.pexpire(key, this.retentionMs);
  }

  // Entries trimmed from the stream while still pending come back without fields, and an entry
  // that publish() did not write may not parse. Both are acknowledged so that they stop coming back.
  async #keepReadable(requester: string, entries: StreamEntry[]): Promise<ResultEntry[]> {
    const readable: ResultEntry[] = [];
    const unreadable: string[] = [];
    for (const [entryId, fields] of entries) {
      const result = fields === null ? undefined : parseResult(fieldValue(fields, 'result'));
      if (result === undefined) unreadable.push(entryId);
      else readable.push({ entryId, result });
    }
    if (unreadable.length > 0) await this.ack(requester, unreadable);
    return readable;
  }

  async #blockingConnection(): Promise<Redis> {
    if (this.#blockingRedis === undefined) {
      const connection = this.#redis.duplicate();
      connection.on('error', () => {
        // Errors reach the caller through the rejected read; this listener keeps ioredis from
        // printing them too.
      });
      this.#blockingRedis = connection;
    }
    const connection = this.#blockingRedis;
    const { host, port } = connection.options;
    await waitForRedis(connection, `redis://${host ?? 'localhost'}:${port ?? 6379}`);
    return connection;
  }
}

/** Returns the fields of a result that come from the job's request: who asked to move what, where and how. */
export function requestFields(
  jobId: string,
  request: MigrationRequest,
): Pick<
  MigrationResult,
  'jobId' | 'vm' | 'source' | 'target' | 'requester' | 'reason' | 'ticket' | 'tunnel'
> {
  return {
    jobId,
    vm: request.vm,
    source: request.source,
    target: request.target,
    requester: request.requester,
    ...(request.reason === undefined ? {} : { reason: request.reason }),
    ...(request.ticket === undefined ? {} : { ticket: request.ticket }),
    tunnel: request.options.tunnel,
  };
}

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { parseInventory } from '../../../src/config/inventory.js';
import { FerryError } from '../../../src/errors.js';
import { startRedis, type LabRedis } from '../../../src/lab/redis.js';
import {
  enqueueMigration,
  getMigrationStatus,
  waitForResult,
  type MigrationStatusReport,
} from '../../../src/jobs/producer.js';
import {
  createRedisConnection,
  openMigrationQueue,
  queueName,
  retryBackoffType,
  type MigrationJobData,
  type MigrationQueue,
} from '../../../src/jobs/queue.js';
import { ResultStore, resultKey, resultStreamKey } from '../../../src/jobs/results.js';
import type { MigrationResult, MigrationStatus } from '../../../src/types.js';

function labHost(address: string): Record<string, unknown> {
  return {
    address,
    port: 22,
    user: 'ferrylab',
    identityFile: '/tmp/x/id',
    hostKey: `SHA256:${'A'.repeat(43)}`,
    relocationPort: 8002,
  };
}

const inventory = parseInventory({ hosts: { 'xen-a': labHost('127.0.0.2'), 'xen-b': labHost('127.0.0.3') } });
const request = {
  vm: 'web01',
  source: 'xen-a',
  target: 'xen-b',
  requester: 'alice',
  reason: 'kernel update',
};

function resultFor(job: Job<MigrationJobData>, status: MigrationStatus): MigrationResult {
  const now = new Date().toISOString();
  return {
    jobId: job.id ?? 'missing',
    status,
    vm: job.data.vm,
    source: job.data.source,
    target: job.data.target,
    requester: job.data.requester,
    tunnel: job.data.options.tunnel,
    bytes: 4096,
    phaseMs: { migrate: 5 },
    attempts: job.attemptsMade + 1,
    bastion: 'test-bastion',
    startedAt: now,
    finishedAt: now,
  };
}

function sampleResult(requester: string, status: MigrationStatus = 'completed'): MigrationResult {
  const now = new Date().toISOString();
  return {
    jobId: randomUUID(),
    status,
    vm: 'web01',
    source: 'xen-a',
    target: 'xen-b',
    requester,
    tunnel: 'relay',
    phaseMs: {},
    attempts: 1,
    bastion: 'test-bastion',
    startedAt: now,
    finishedAt: now,
  };
}

async function rejectionOf(promise: Promise<unknown>): Promise<FerryError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(FerryError);
    return error as FerryError;
  }
  throw new Error('the promise resolved');
}

let redis: LabRedis;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  // Last opened, first closed: workers stop before the queue they use.
  while (cleanups.length > 0) await cleanups.pop()?.();
});

afterAll(async () => {
  await redis?.stop();
});

async function openQueue(options: { retentionMs?: number } = {}): Promise<MigrationQueue> {
  const queue = await openMigrationQueue({ redisUrl: redis.url, prefix: `t-${randomUUID()}`, ...options });
  cleanups.push(() => queue.close());
  return queue;
}

function workerConnection(): Redis {
  const connection = createRedisConnection(redis.url, 'worker');
  cleanups.push(async () => connection.disconnect());
  return connection;
}

/** Starts a stand-in for the migration worker: a plain BullMQ Worker running `processor`. */
function startFakeWorker(
  queue: MigrationQueue,
  processor: (job: Job<MigrationJobData, MigrationResult>, results: ResultStore) => Promise<MigrationResult>,
): void {
  const results = new ResultStore(workerConnection(), { prefix: queue.prefix });
  const worker = new Worker<MigrationJobData, MigrationResult>(queueName, (job) => processor(job, results), {
    connection: workerConnection(),
    prefix: queue.prefix,
  });
  worker.on('error', () => {});
  cleanups.push(() => worker.close());
}

describe('enqueueMigration', () => {
  it('queues a job with the request and its options', async () => {
    const queue = await openQueue();
    const { jobId } = await enqueueMigration(queue, inventory, { ...request, options: { attempts: 5 } });

    const job = await queue.queue.getJob(jobId);
    expect(job?.name).toBe('migrate');
    expect(job?.data).toMatchObject({ ...request, options: { tunnel: 'relay', attempts: 5 } });
    expect(Date.parse(job?.data.enqueuedAt ?? '')).not.toBeNaN();
    expect(job?.opts.attempts).toBe(5);
    expect(job?.opts.backoff).toEqual({ type: retryBackoffType });
    expect(job?.opts.removeOnComplete).toEqual({ age: 7 * 24 * 3600 });
    expect(job?.opts.removeOnFail).toEqual({ age: 7 * 24 * 3600 });
  });

  it('queues nothing for a rejected request', async () => {
    const queue = await openQueue();
    const error = await rejectionOf(enqueueMigration(queue, inventory, { ...request, vm: 'web01; reboot' }));
    expect(error.code).toBe('INVALID_REQUEST');

    const unknownHost = await rejectionOf(
      enqueueMigration(queue, inventory, { ...request, target: 'xen-z' }),
    );
    expect(unknownHost.code).toBe('UNKNOWN_HOST');

    const count = await queue.queue.getJobCountByTypes('waiting', 'delayed', 'active', 'prioritized');
    expect(count).toBe(0);
  });
});

describe('getMigrationStatus', () => {
  it('reports a new job as queued', async () => {
    const queue = await openQueue();
    const { jobId } = await enqueueMigration(queue, inventory, request);
    const report = await getMigrationStatus(queue, jobId);
    expect(report.state).toBe('queued');
    expect(report.attemptsMade).toBe(0);
    expect(report.request?.vm).toBe('web01');
    expect(report.result).toBeUndefined();
  });

  it('rejects an unknown id with JOB_NOT_FOUND', async () => {
    const queue = await openQueue();
    for (const jobId of [randomUUID(), '12345', 'not a job id;']) {
      const error = await rejectionOf(getMigrationStatus(queue, jobId));
      expect(error.code).toBe('JOB_NOT_FOUND');
    }
  });

  it('prefers the published result over the job state', async () => {
    const queue = await openQueue();
    const { jobId } = await enqueueMigration(queue, inventory, request);
    await queue.results.publish({ ...sampleResult('alice', 'needs-attention'), jobId });

    const report = await getMigrationStatus(queue, jobId);
    expect(report.state).toBe('needs-attention');
    expect(report.result?.jobId).toBe(jobId);
  });

  it('reports a failed job without a result as failed', async () => {
    const queue = await openQueue();
    startFakeWorker(queue, async () => {
      throw new Error('relocation port refused');
    });
    const { jobId } = await enqueueMigration(queue, inventory, { ...request, options: { attempts: 1 } });

    const report = await waitForResult(queue, jobId, { timeoutMs: 10_000 });
    expect(report.state).toBe('failed');
    expect(report.failedReason).toBe('relocation port refused');
    expect(report.result).toBeUndefined();
    expect(report.attemptsMade).toBe(1);
  });
});

describe('waitForResult', () => {
  it('returns the published result and reports progress', async () => {
    const queue = await openQueue();
    startFakeWorker(queue, async (job, results) => {
      await job.updateProgress({ phase: 'migrate', bytes: 1024, totalBytes: 4096 });
      await sleep(600);
      await job.updateProgress({ phase: 'verify', bytes: 4096, totalBytes: 4096 });
      await sleep(600);
      const result = resultFor(job, 'completed');
      await results.publish(result);
      return result;
    });
    const { jobId } = await enqueueMigration(queue, inventory, request);

    const updates: MigrationStatusReport[] = [];
    const report = await waitForResult(queue, jobId, {
      timeoutMs: 20_000,
      onProgress: (update) => updates.push(update),
    });

    expect(report.state).toBe('completed');
    expect(report.result).toMatchObject({ jobId, status: 'completed', vm: 'web01', bastion: 'test-bastion' });
    expect(updates.map((update) => update.progress?.phase)).toContain('migrate');
    expect(updates.map((update) => update.progress?.phase)).toContain('verify');
    expect(updates.at(-1)?.state).toBe('completed');
  });

  it('returns the last status when the timeout passes', async () => {
    const queue = await openQueue();
    const { jobId } = await enqueueMigration(queue, inventory, request);
    const started = Date.now();
    const report = await waitForResult(queue, jobId, { timeoutMs: 600 });
    expect(report.state).toBe('queued');
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});

describe('ResultStore', () => {
  it('shows a requester only its own results', async () => {
    const queue = await openQueue();
    const forAlice = sampleResult('alice');
    const forBob = sampleResult('bob');
    await queue.results.publish(forAlice);
    await queue.results.publish(forBob);

    const bobs = await queue.results.readForRequester('bob');
    expect(bobs.map((entry) => entry.result.jobId)).toEqual([forBob.jobId]);
    const alices = await queue.results.readForRequester('alice');
    expect(alices.map((entry) => entry.result.jobId)).toEqual([forAlice.jobId]);
  });

  it('keeps results for a requester that reads later', async () => {
    const queue = await openQueue();
    // No reader has read carol's results yet, so no consumer group exists when these are published.
    const first = sampleResult('carol');
    const second = sampleResult('carol', 'failed');
    await queue.results.publish(first);
    await queue.results.publish(second);

    const entries = await queue.results.readForRequester('carol');
    expect(entries.map((entry) => entry.result)).toEqual([first, second]);

    expect(
      await queue.results.ack(
        'carol',
        entries.map((entry) => entry.entryId),
      ),
    ).toBe(2);
    expect(await queue.results.readForRequester('carol')).toEqual([]);
    // The record itself stays readable by job id after the ack.
    expect(await queue.results.get(first.jobId)).toEqual(first);
  });

  it('returns unacknowledged results again', async () => {
    const queue = await openQueue();
    const result = sampleResult('dave');
    await queue.results.publish(result);

    const firstRead = await queue.results.readForRequester('dave');
    const secondRead = await queue.results.readForRequester('dave');
    expect(secondRead).toEqual(firstRead);
    expect(secondRead).toHaveLength(1);
  });

  it('adds one entry when the same result is published twice', async () => {
    const queue = await openQueue();
    const result = sampleResult('erin');
    expect(await queue.results.publish(result)).toBe(true);
    expect(await queue.results.publish(result)).toBe(false);
    expect(await queue.connection.xlen(resultStreamKey(queue.prefix, 'erin'))).toBe(1);
  });

  it('expires records and streams after the retention', async () => {
    const queue = await openQueue({ retentionMs: 60_000 });
    const result = sampleResult('frank');
    await queue.results.publish(result);

    const recordTtl = await queue.connection.pttl(resultKey(queue.prefix, result.jobId));
    expect(recordTtl).toBeGreaterThan(50_000);
    expect(recordTtl).toBeLessThanOrEqual(60_000);
    const streamTtl = await queue.connection.pttl(resultStreamKey(queue.prefix, 'frank'));
    expect(streamTtl).toBeGreaterThan(50_000);
  });

  it('waits for a result with blockMs', async () => {
    const queue = await openQueue();
    const result = sampleResult('grace');
    const reading = queue.results.readForRequester('grace', { blockMs: 5_000 });
    await sleep(300);
    await queue.results.publish(result);
    const entries = await reading;
    expect(entries.map((entry) => entry.result.jobId)).toEqual([result.jobId]);
  });

  it('rejects a requester name that is not an identity', async () => {
    const queue = await openQueue();
    const error = await rejectionOf(queue.results.readForRequester('alice smith'));
    expect(error.code).toBe('INVALID_REQUEST');
  });
});

describe('producer without Redis', () => {
  it('fails fast with REDIS_UNAVAILABLE when Redis is down', async () => {
    const stopped = await startRedis();
    const url = stopped.url;
    await stopped.stop();

    const started = Date.now();
    const error = await rejectionOf(openMigrationQueue({ redisUrl: url, prefix: 't-down' }));
    expect(error.code).toBe('REDIS_UNAVAILABLE');
    expect(error.message).toContain(url);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('fails fast when Redis stops after the queue opened', async () => {
    const ownRedis = await startRedis();
    try {
      const queue = await openMigrationQueue({ redisUrl: ownRedis.url, prefix: 't-halted' });
      cleanups.push(() => queue.close());
      await ownRedis.halt();

      const started = Date.now();
      const error = await rejectionOf(enqueueMigration(queue, inventory, request));
      expect(error.code).toBe('REDIS_UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(3_000);

      const statusError = await rejectionOf(getMigrationStatus(queue, randomUUID()));
      expect(statusError.code).toBe('REDIS_UNAVAILABLE');
    } finally {
      await ownRedis.stop();
    }
  });
});

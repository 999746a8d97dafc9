import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { workerOptionsFrom } from '../../../src/cli/worker.js';
import { cancelMigration } from '../../../src/jobs/cancel.js';
import { enqueueMigration, waitForResult } from '../../../src/jobs/producer.js';
import { openMigrationQueue, type MigrationQueue } from '../../../src/jobs/queue.js';
import { startRedis, type LabRedis } from '../../../src/lab/redis.js';
import { readLockSnapshot } from '../../../src/locks/snapshot.js';
import { LockStore } from '../../../src/locks/store.js';
import { startMigrationWorker, type MigrationWorkerHandle } from '../../../src/migration/worker.js';
import { fakeInventory, quietLogger, sleep } from './scheduler-helpers.js';

// The hosts stay busy throughout, so jobs never get past waiting and no SSH connection is made.
const inventory = fakeInventory(['xen-a', 'xen-b']);

describe('worker with jobs waiting for their slots', () => {
  let redis: LabRedis;
  let client: Redis;
  let queue: MigrationQueue;
  let store: LockStore;
  let worker: MigrationWorkerHandle | undefined;
  const prefix = `waiting-${process.pid}`;

  beforeAll(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
    queue = await openMigrationQueue({ redisUrl: redis.url, prefix });
    store = new LockStore(client, prefix);
    // Another bastion's migration keeps both hosts busy.
    const busy = await store.enter({
      jobId: 'elsewhere',
      token: 'elsewhere-token',
      resources: [
        { name: 'host:xen-a', limit: 1 },
        { name: 'host:xen-b', limit: 1 },
      ],
      leaseMs: 600_000,
      ageingMs: 600_000,
      subject: { vm: 'other', source: 'xen-a', target: 'xen-b' },
      bastion: 'elsewhere',
    });
    expect(busy.granted).toBe(true);
  });

  afterEach(async () => {
    await worker?.close();
    worker = undefined;
  });

  afterAll(async () => {
    await store?.release('elsewhere', 'elsewhere-token');
    client?.disconnect();
    await queue?.close();
    await redis?.stop();
  });

  async function startWorker(): Promise<MigrationWorkerHandle> {
    worker = await startMigrationWorker({
      redisUrl: redis.url,
      prefix,
      inventory,
      logger: quietLogger,
      // A stop would otherwise wait this long for a job that waits for its slots.
      shutdownGraceMs: 60_000,
    });
    return worker;
  }

  async function enqueueWaiting(vm: string): Promise<string> {
    const { jobId } = await enqueueMigration(queue, inventory, {
      vm,
      source: 'xen-a',
      target: 'xen-b',
      requester: 'lock-tests',
      reason: 'waiting test',
    });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const snapshot = await readLockSnapshot(client, prefix);
      if (snapshot.hosts.some((host) => host.waiting.some((job) => job.jobId === jobId))) return jobId;
      await sleep(20);
    }
    throw new Error(`job ${jobId} never waited for its slots`);
  }

  it('stop puts the waiting job back', async () => {
    const running = await startWorker();
    const jobId = await enqueueWaiting('web01');

    const started = performance.now();
    await running.close();
    expect(performance.now() - started).toBeLessThan(5_000);
    const job = await queue.queue.getJob(jobId);
    expect(await job?.getState()).toBe('waiting');
    expect(job?.attemptsMade).toBe(0);
    const snapshot = await readLockSnapshot(client, prefix);
    expect(snapshot.hosts.flatMap((host) => host.waiting)).toEqual([]);
    await job?.remove();
  });

  it('cancel reaches a waiting job', async () => {
    await startWorker();
    const jobId = await enqueueWaiting('web02');

    expect((await cancelMigration(queue, jobId, 'operator')).outcome).toBe('cancelling');
    const report = await waitForResult(queue, jobId, { timeoutMs: 10_000, pollMs: 50 });
    expect(report.result?.status).toBe('cancelled');
    expect(report.result?.attempts).toBe(1);
    const snapshot = await readLockSnapshot(client, prefix);
    expect(snapshot.hosts.flatMap((host) => host.waiting)).toEqual([]);
  });
});

describe('worker lock options', () => {
  it('reads flags and environment', () => {
    const folder = mkdtempSync(join(tmpdir(), 'ferry-lock-options-'));
    const inventoryPath = join(folder, 'inventory.yaml');
    const host = `{ address: 127.0.0.2, user: ferrylab, identityFile: /tmp/x/id, hostKey: 'SHA256:${'A'.repeat(43)}', limits: { migrations: 2 } }`;
    writeFileSync(inventoryPath, `hosts:\n  xen-a: ${host}\n`);
    try {
      const options = workerOptionsFrom(
        {},
        {},
        {
          FERRY_INVENTORY: inventoryPath,
          FERRY_LEASE_MS: '20000',
          FERRY_SLOT_AGEING_MS: '120000',
          FERRY_SLOT_MAX_WAIT_MS: '3600000',
          FERRY_MAX_MIGRATIONS: '6',
        },
      );
      expect(options).toMatchObject({
        leaseMs: 20_000,
        slotAgeingMs: 120_000,
        slotMaxWaitMs: 3_600_000,
        maxMigrations: 6,
      });
      expect(
        workerOptionsFrom(
          {},
          { maxMigrations: 3 },
          { FERRY_INVENTORY: inventoryPath, FERRY_MAX_MIGRATIONS: '6' },
        ).maxMigrations,
      ).toBe(3);
      expect(() =>
        workerOptionsFrom({}, {}, { FERRY_INVENTORY: inventoryPath, FERRY_MAX_MIGRATIONS: 'all' }),
      ).toThrow('FERRY_MAX_MIGRATIONS');
      expect(options.inventory.host('xen-a').limits).toEqual({ migrations: 2 });
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

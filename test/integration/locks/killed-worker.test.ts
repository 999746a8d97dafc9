import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadInventory, type Inventory } from '../../../src/config/inventory.js';
import { enqueueMigration, getMigrationStatus, waitForResult } from '../../../src/jobs/producer.js';
import { openMigrationQueue, type MigrationQueue } from '../../../src/jobs/queue.js';
import { Lab } from '../../../src/lab/lab.js';
import { readLockEvents } from '../../../src/locks/events.js';
import { readLockSnapshot } from '../../../src/locks/snapshot.js';
import { LockStore } from '../../../src/locks/store.js';
import type { MigrationResult } from '../../../src/types.js';
import { sleep } from './scheduler-helpers.js';
import { domain, highestOverlap, spawnWorker, stopWorker, type WorkerProcess } from './workers.js';

describe('worker killed while holding locks', () => {
  let lab: Lab;
  let inventory: Inventory;
  let client: Redis;
  const queues: MigrationQueue[] = [];
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    lab = await Lab.start({
      // 2.2 MB per 512 MiB VM at 500 kB/s: about 4.5 s, time enough to kill the worker mid-way.
      bytesPerMiB: 4096,
      hosts: [
        {
          name: 'xen-a',
          domains: [domain('web01', 512), domain('web02', 512)],
          transferRateBytesPerSec: 500_000,
        },
        { name: 'xen-b', transferRateBytesPerSec: 500_000 },
      ],
    });
    inventory = loadInventory(lab.inventoryPath);
    client = new Redis(lab.redis?.url as string);
  });

  afterAll(async () => {
    for (const worker of workers) await stopWorker(worker, 'SIGKILL');
    for (const queue of queues) await queue.close();
    client?.disconnect();
    await lab?.stop();
  });

  async function openQueue(prefix: string): Promise<MigrationQueue> {
    const queue = await openMigrationQueue({ redisUrl: lab.redis?.url as string, prefix });
    queues.push(queue);
    return queue;
  }

  async function enqueue(queue: MigrationQueue, vm: string): Promise<string> {
    const { jobId } = await enqueueMigration(queue, inventory, {
      vm,
      source: 'xen-a',
      target: 'xen-b',
      requester: 'lock-tests',
      reason: 'killed worker test',
    });
    return jobId;
  }

  /** Waits until the job's migration is moving bytes, so that its worker holds the locks. */
  async function waitForTransfer(queue: MigrationQueue, jobId: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const report = await getMigrationStatus(queue, jobId);
      if (report.progress?.phase === 'migrate' && (report.progress.bytes ?? 0) > 0) return;
      await sleep(20);
    }
    throw new Error(`job ${jobId} never started moving bytes`);
  }

  async function holdersOf(prefix: string, jobId: string): Promise<string[]> {
    const snapshot = await readLockSnapshot(client, prefix);
    return snapshot.hosts
      .filter((host) => host.holders.some((holder) => holder.jobId === jobId))
      .map((host) => host.host);
  }

  it('takeover reclaims the locks at once', async () => {
    const prefix = `takeover-${process.pid}`;
    const queue = await openQueue(prefix);
    // BullMQ hands the job to another worker 2-3 s after its worker died. The lease would take
    // 60 s to expire, so a prompt finish proves that the locks were reclaimed.
    const env = {
      FERRY_LOCK_DURATION_MS: '2000',
      FERRY_STALLED_INTERVAL_MS: '1000',
      FERRY_LEASE_MS: '60000',
    };
    const first = spawnWorker(lab, prefix, 'bastion-1', env);
    workers.push(first);
    const transfersBefore = lab.transfers.all().length;
    const jobId = await enqueue(queue, 'web01');
    await waitForTransfer(queue, jobId);
    expect(await holdersOf(prefix, jobId)).toEqual(['xen-a', 'xen-b']);

    await stopWorker(first, 'SIGKILL');
    const killedAt = performance.now();
    const second = spawnWorker(lab, prefix, 'bastion-2', env);
    workers.push(second);

    const report = await waitForResult(queue, jobId, { timeoutMs: 50_000, pollMs: 100 });
    const result = report.result as MigrationResult;
    expect(result?.status, second.output()).toBe('completed');
    expect(result.bastion).toBe('bastion-2');
    expect(performance.now() - killedAt).toBeLessThan(30_000);
    const reclaimed = (await readLockEvents(client, prefix)).filter((event) => event.type === 'reclaimed');
    expect(reclaimed.map((event) => [event.jobId, event.fields.bastion])).toEqual([[jobId, 'bastion-2']]);
    expect(highestOverlap(lab.transfers.all().slice(transfersBefore)).get('xen-a')).toBe(1);
    expect(await holdersOf(prefix, jobId)).toEqual([]);
    await stopWorker(second, 'SIGTERM');
  }, 90_000);

  it('locks expire within the lease', async () => {
    const prefix = `expiry-${process.pid}`;
    const queue = await openQueue(prefix);
    const leaseMs = 3_000;
    const worker = spawnWorker(lab, prefix, 'bastion-3', { FERRY_LEASE_MS: String(leaseMs) });
    workers.push(worker);
    const jobId = await enqueue(queue, 'web02');
    await waitForTransfer(queue, jobId);
    expect(await holdersOf(prefix, jobId)).toEqual(['xen-a', 'xen-b']);

    await stopWorker(worker, 'SIGKILL');
    const killedAt = performance.now();
    while ((await holdersOf(prefix, jobId)).length > 0) {
      expect(performance.now() - killedAt, 'locks still held').toBeLessThan(leaseMs + 500);
      await sleep(50);
    }
    // The last renewal was at most a sixth of the lease before the kill.
    expect(performance.now() - killedAt).toBeGreaterThan(leaseMs - leaseMs / 6 - 300);

    // Free again: a new job gets both host slots at once.
    const store = new LockStore(client, prefix);
    const probe = await store.enter({
      jobId: 'probe',
      token: 'probe-token',
      resources: [
        { name: 'host:xen-a', limit: 1 },
        { name: 'host:xen-b', limit: 1 },
      ],
      leaseMs: 5_000,
      ageingMs: 60_000,
      subject: { vm: 'probe', source: 'xen-a', target: 'xen-b' },
      bastion: 'test',
    });
    expect(probe.granted).toBe(true);
    await store.release('probe', 'probe-token');
  }, 60_000);
});

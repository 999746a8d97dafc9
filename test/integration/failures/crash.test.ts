import type { ChildProcess } from 'node:child_process';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadInventory, type Inventory } from '../../../src/config/inventory.js';
import { openMigrationQueue, type MigrationQueue } from '../../../src/jobs/queue.js';
import { Lab } from '../../../src/lab/lab.js';
import { createLogger } from '../../../src/log.js';
import { startMigrationWorker } from '../../../src/migration/worker.js';
import { domain, enqueue, placement, resultOf, spawnWorker, stopWorker, waitForTransfer } from './helpers.js';

// 2.2 MiB per migration of a 512 MiB VM, at 1.5 MB/s: about 1.5 s, enough to kill things mid-way.
const labOptions = {
  bytesPerMiB: 4096,
  hosts: [
    {
      name: 'xen-a',
      domains: [domain('web01'), domain('web02'), domain('web03')],
      transferRateBytesPerSec: 1_500_000,
    },
    { name: 'xen-b', transferRateBytesPerSec: 1_500_000 },
  ],
};

describe('worker crashes', () => {
  let lab: Lab;
  let inventory: Inventory;
  let queue: MigrationQueue;
  const prefix = 'crash';
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    lab = await Lab.start(labOptions);
    inventory = loadInventory(lab.inventoryPath);
    queue = await openMigrationQueue({ redisUrl: lab.redis?.url as string, prefix });
  });

  afterAll(async () => {
    for (const worker of workers) await stopWorker(worker, 'SIGKILL');
    await queue?.close();
    await lab?.stop();
  });

  it('finishes every job exactly once when its worker is killed mid-transfer, ten times', async () => {
    let worker = spawnWorker(lab, prefix);
    workers.push(worker);
    for (let round = 0; round < 10; round += 1) {
      const [source, target] = round % 2 === 0 ? ['xen-a', 'xen-b'] : ['xen-b', 'xen-a'];
      const transfersBefore = lab.transfers.all().length;
      const jobId = await enqueue(queue, inventory, 'web01', source, target);
      await waitForTransfer(queue, jobId, 4096);

      await stopWorker(worker, 'SIGKILL');
      worker = spawnWorker(lab, prefix);
      workers.push(worker);

      const result = await resultOf(queue, jobId);
      const transfers = lab.transfers
        .all()
        .slice(transfersBefore)
        .filter((record) => record.vm === 'web01');
      const completed = transfers.filter((record) => record.outcome === 'completed');
      expect(['completed', 'needs-attention'], `round ${round}`).toContain(result.status);
      if (result.status === 'completed') {
        expect(placement(lab, 'web01'), `round ${round}`).toEqual({
          [source]: undefined,
          [target]: '-b----',
        });
        expect(completed, `round ${round}: one completed transfer`).toHaveLength(1);
      } else {
        expect(result.observed?.length, `round ${round}: observed state reported`).toBeGreaterThan(0);
      }
    }
  }, 300_000);

  it('lets a running migration finish when the worker gets SIGTERM', async () => {
    // Only the new worker may take the job, so the earlier ones go first.
    for (const other of workers) await stopWorker(other, 'SIGKILL');
    const worker = spawnWorker(lab, prefix);
    workers.push(worker);
    const jobId = await enqueue(queue, inventory, 'web02', 'xen-a', 'xen-b');
    await waitForTransfer(queue, jobId, 4096);

    const exitCode = await stopWorker(worker, 'SIGTERM');
    expect(exitCode).toBe(0);
    const result = await resultOf(queue, jobId, 5_000);
    expect(result.status).toBe('completed');
    expect(result.attempts).toBe(1);
    expect(placement(lab, 'web02')).toEqual({ 'xen-a': undefined, 'xen-b': '-b----' });
  });

  it('leaves an unfinished migration to another worker after the grace period', async () => {
    const worker = spawnWorker(lab, prefix, { FERRY_SHUTDOWN_GRACE_MS: '200' });
    workers.push(worker);
    const jobId = await enqueue(queue, inventory, 'web03', 'xen-a', 'xen-b');
    await waitForTransfer(queue, jobId, 4096);
    expect(await stopWorker(worker, 'SIGTERM')).toBe(0);

    const successor = spawnWorker(lab, prefix);
    workers.push(successor);
    const result = await resultOf(queue, jobId);
    expect(result.status).toBe('completed');
    expect(placement(lab, 'web03')).toEqual({ 'xen-a': undefined, 'xen-b': '-b----' });
  });
});

describe('sshd killed during a transfer', () => {
  let lab: Lab;
  let inventory: Inventory;
  let queue: MigrationQueue;
  let close: () => Promise<void>;

  beforeAll(async () => {
    lab = await Lab.start(labOptions);
    inventory = loadInventory(lab.inventoryPath);
    const url = lab.redis?.url as string;
    queue = await openMigrationQueue({ redisUrl: url, prefix: 'sshd' });
    const worker = await startMigrationWorker({
      redisUrl: url,
      prefix: 'sshd',
      inventory,
      retryBackoff: { baseDelayMs: 400, maxDelayMs: 1500 },
      logger: createLogger({ level: 'silent' }),
    });
    close = () => worker.close();
  });

  afterAll(async () => {
    await close?.();
    await queue?.close();
    await lab?.stop();
  });

  for (const victim of ['xen-a', 'xen-b'] as const) {
    const role = victim === 'xen-a' ? 'source' : 'target';
    it(`reconciles and retries after every ${role} sshd process is killed`, async () => {
      const vm = victim === 'xen-a' ? 'web01' : 'web02';
      const jobId = await enqueue(queue, inventory, vm, 'xen-a', 'xen-b', { attempts: 8 });
      await waitForTransfer(queue, jobId, 4096);

      await lab.host(victim).sshd.kill();
      await new Promise((resolve) => setTimeout(resolve, 800));
      await lab.host(victim).sshd.start();

      const result = await resultOf(queue, jobId);
      expect(result.status).toBe('completed');
      expect(result.attempts).toBeGreaterThan(1);
      expect(placement(lab, vm)).toEqual({ 'xen-a': undefined, 'xen-b': '-b----' });
      const completed = lab.transfers
        .all()
        .filter((record) => record.vm === vm && record.outcome === 'completed');
      expect(completed).toHaveLength(1);
    });
  }
});

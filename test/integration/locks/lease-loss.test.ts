import { Writable } from 'node:stream';

import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadInventory, type Inventory } from '../../../src/config/inventory.js';
import { enqueueMigration, getMigrationStatus, waitForResult } from '../../../src/jobs/producer.js';
import { openMigrationQueue, type MigrationQueue } from '../../../src/jobs/queue.js';
import { Lab } from '../../../src/lab/lab.js';
import { migrationResources } from '../../../src/locks/resources.js';
import { LockStore } from '../../../src/locks/store.js';
import { createLogger } from '../../../src/log.js';
import { startMigrationWorker, type MigrationWorkerHandle } from '../../../src/migration/worker.js';
import type { MigrationResult } from '../../../src/types.js';
import { sleep } from './scheduler-helpers.js';
import { domain } from './workers.js';

/** Log lines of the worker, parsed. */
class LogCapture extends Writable {
  readonly lines: Array<Record<string, unknown>> = [];

  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString().split('\n')) {
      if (line.trim() !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
}

describe('lease lost while migrating', () => {
  let lab: Lab;
  let inventory: Inventory;
  let queue: MigrationQueue;
  let client: Redis;
  let worker: MigrationWorkerHandle;
  const logs = new LogCapture();
  const prefix = `lease-${process.pid}`;
  const leaseMs = 1_200;

  beforeAll(async () => {
    lab = await Lab.start({
      // Append-only, so that the queue survives halting Redis.
      redis: { appendOnly: true },
      // 2.2 MB per 512 MiB VM at 500 kB/s: about 4.5 s.
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
    queue = await openMigrationQueue({ redisUrl: lab.redis?.url as string, prefix });
    client = new Redis(lab.redis?.url as string);
    // Connection errors while Redis is halted are expected; commands wait for the reconnect.
    client.on('error', () => undefined);
    worker = await startMigrationWorker({
      redisUrl: lab.redis?.url as string,
      prefix,
      inventory,
      bastion: 'lease-bastion',
      leaseMs,
      logger: createLogger({ level: 'info', destination: logs }),
    });
  });

  afterAll(async () => {
    await worker?.close();
    client?.disconnect();
    await queue?.close();
    await lab?.stop();
  });

  async function startMigration(vm: string): Promise<string> {
    const { jobId } = await enqueueMigration(queue, inventory, {
      vm,
      source: 'xen-a',
      target: 'xen-b',
      requester: 'lock-tests',
      reason: 'lease loss test',
    });
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const report = await getMigrationStatus(queue, jobId);
      if (report.progress?.phase === 'migrate' && (report.progress.bytes ?? 0) > 0) return jobId;
      await sleep(20);
    }
    throw new Error(`job ${jobId} never started moving bytes`);
  }

  function errorLogsOf(jobId: string): string[] {
    return logs.lines
      .filter((line) => line.jobId === jobId && line.level === 50)
      .map((line) => String(line.msg));
  }

  it('takeover by another run aborts the attempt', async () => {
    const jobId = await startMigration('web01');
    // Another run of the same job takes the locks over with its own token.
    const store = new LockStore(client, prefix);
    const stolen = await store.enter({
      jobId,
      token: 'other-run',
      resources: migrationResources({ vm: 'web01', source: 'xen-a', target: 'xen-b' }, inventory, undefined),
      leaseMs: 30_000,
      ageingMs: 60_000,
      subject: { vm: 'web01', source: 'xen-a', target: 'xen-b' },
      bastion: 'elsewhere',
    });
    expect(stolen.granted).toBe(true);

    const report = await waitForResult(queue, jobId, { timeoutMs: 30_000, pollMs: 100 });
    const result = report.result as MigrationResult;
    await store.release(jobId, 'other-run');

    expect(result.error?.code).toBe('LEASE_LOST');
    expect(result.status).toBe('failed');
    expect(result.observed).toEqual([
      expect.objectContaining({ host: 'xen-a', state: 'running' }),
      expect.objectContaining({ host: 'xen-b', state: 'absent' }),
    ]);
    expect(errorLogsOf(jobId)).toContain('Lease lost; aborting the migration');
  });

  it('unreachable Redis aborts the attempt', async () => {
    const jobId = await startMigration('web02');
    await lab.redis?.halt();
    await sleep(leaseMs);
    await lab.redis?.resume();

    const report = await waitForResult(queue, jobId, { timeoutMs: 60_000, pollMs: 100 });
    const result = report.result as MigrationResult;
    expect(result.error?.code).toBe('LEASE_LOST');
    expect(result.error?.message).toContain('no renewal succeeded');
    expect(['failed', 'needs-attention']).toContain(result.status);
    if (result.status === 'failed') {
      expect(result.observed?.find((placement) => placement.host === 'xen-a')?.state).toBe('running');
    }
    expect(errorLogsOf(jobId)).toContain('Lease lost; aborting the migration');
  });
});

import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadInventory, type Inventory } from '../../../src/config/inventory.js';
import { enqueueMigration, waitForResult } from '../../../src/jobs/producer.js';
import { openMigrationQueue, type MigrationQueue } from '../../../src/jobs/queue.js';
import { Lab } from '../../../src/lab/lab.js';
import { handovers, readLockEvents } from '../../../src/locks/events.js';
import { readLockSnapshot } from '../../../src/locks/snapshot.js';
import type { MigrationResult } from '../../../src/types.js';
import { quantile } from './scheduler-helpers.js';
import { domain, highestOverlap, spawnWorker, stopWorker, type WorkerProcess } from './workers.js';

const hostNames = Array.from({ length: 8 }, (_, index) => `xen-${index + 1}`);
const migrationCount = 60;
const vmName = (index: number): string => `vm${String(index).padStart(2, '0')}`;

/** A small seeded generator, so that a failing run can be repeated with the seed it prints. */
function randomFrom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1_664_525 + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

describe('host limits across worker processes', () => {
  let lab: Lab;
  let inventory: Inventory;
  let queue: MigrationQueue;
  let client: Redis;
  const workers: WorkerProcess[] = [];
  const prefix = `many-${process.pid}`;

  beforeAll(async () => {
    lab = await Lab.start({
      // 64 MiB VMs at 2 KiB per MiB: 128 KiB per migration, about 0.3 s at 400 kB/s.
      bytesPerMiB: 2048,
      hosts: hostNames.map((name, hostIndex) => ({
        name,
        transferRateBytesPerSec: 400_000,
        domains: [
          ...Array.from({ length: migrationCount }, (_, index) => index)
            .filter((index) => index % hostNames.length === hostIndex)
            .map((index) => domain(vmName(index), 64)),
          ...(name === 'xen-1' ? [domain('left01', 64)] : []),
          ...(name === 'xen-2' ? [domain('right01', 64)] : []),
        ],
      })),
    });
    inventory = loadInventory(lab.inventoryPath);
    queue = await openMigrationQueue({ redisUrl: lab.redis?.url as string, prefix });
    client = new Redis(lab.redis?.url as string);
    for (const bastion of ['bastion-1', 'bastion-2', 'bastion-3']) {
      workers.push(spawnWorker(lab, prefix, bastion));
    }
  });

  afterAll(async () => {
    for (const worker of workers) await stopWorker(worker, 'SIGTERM');
    client?.disconnect();
    await queue?.close();
    await lab?.stop();
  });

  async function enqueue(vm: string, source: string, target: string): Promise<string> {
    const { jobId } = await enqueueMigration(queue, inventory, {
      vm,
      source,
      target,
      requester: 'lock-tests',
      reason: 'lock scheduling test',
    });
    return jobId;
  }

  async function resultOf(jobId: string, timeoutMs: number): Promise<MigrationResult> {
    const report = await waitForResult(queue, jobId, { timeoutMs, pollMs: 250 });
    const logs = workers.map((worker) => worker.output()).join('\n');
    expect(report.result, `job ${jobId} ended in state ${report.state}\n${logs}`).toBeDefined();
    return report.result as MigrationResult;
  }

  it('60 random migrations keep the host limit', async () => {
    const seed = Date.now() % 1_000_000;
    const random = randomFrom(seed);
    const requests = Array.from({ length: migrationCount }, (_, index) => {
      const source = hostNames[index % hostNames.length] as string;
      const others = hostNames.filter((name) => name !== source);
      const target = others[Math.floor(random() * others.length)] as string;
      return { vm: vmName(index), source, target };
    });
    const transfersBefore = lab.transfers.all().length;
    const started = performance.now();

    const jobIds = await Promise.all(
      requests.map((request) => enqueue(request.vm, request.source, request.target)),
    );
    const results = await Promise.all(jobIds.map((jobId) => resultOf(jobId, 150_000)));
    const elapsedMs = performance.now() - started;

    const failures = results.filter((result) => result.status !== 'completed');
    expect(failures, `seed ${seed}`).toEqual([]);
    // Waiting for slots does not use attempts.
    expect(results.map((result) => result.attempts).filter((attempts) => attempts !== 1)).toEqual([]);

    const transfers = lab.transfers.all().slice(transfersBefore);
    expect(transfers.filter((transfer) => transfer.outcome === 'completed')).toHaveLength(migrationCount);
    expect(transfers.filter((transfer) => transfer.outcome !== 'completed')).toEqual([]);
    for (const transfer of transfers) expect(hostNames).toContain(transfer.target);
    const overlap = highestOverlap(transfers);
    for (const host of hostNames) expect(overlap.get(host), `${host}, seed ${seed}`).toBe(1);
    // The check above means something only if migrations did run side by side.
    const allAtOnce = highestOverlap(
      transfers.map((transfer) => ({ ...transfer, source: 'any', target: 'all' })),
    );
    expect(allAtOnce.get('any')).toBeGreaterThanOrEqual(2);

    const gaps = handovers(await readLockEvents(client, prefix)).map((handover) => handover.gapMs);
    console.log(
      `${migrationCount} migrations in ${Math.round(elapsedMs)} ms, up to ${allAtOnce.get('any')} at once; ` +
        `hand-over gap (release to next start, in-flight check included) over ${gaps.length}: ` +
        `p50 ${quantile(gaps, 0.5)} ms, p95 ${quantile(gaps, 0.95)} ms`,
    );
    expect((await readLockSnapshot(client, prefix)).hosts).toEqual([]);
  }, 180_000);

  it('opposite migrations both complete', async () => {
    const transfersBefore = lab.transfers.all().length;
    const [there, back] = await Promise.all([
      enqueue('left01', 'xen-1', 'xen-2'),
      enqueue('right01', 'xen-2', 'xen-1'),
    ]);
    const results = await Promise.all([resultOf(there as string, 60_000), resultOf(back as string, 60_000)]);

    expect(results.map((result) => result.status)).toEqual(['completed', 'completed']);
    expect(results.map((result) => result.attempts)).toEqual([1, 1]);
    const transfers = lab.transfers.all().slice(transfersBefore);
    expect(transfers.map((transfer) => transfer.vm).sort()).toEqual(['left01', 'right01']);
    expect(highestOverlap(transfers).get('xen-1')).toBe(1);
    expect((await readLockSnapshot(client, prefix)).hosts).toEqual([]);
  });
});

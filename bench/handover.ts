/**
 * Measure 3: the lock hand-over gap. Many migrations from one host to another are queued at
 * once, and each host takes part in one migration at a time (the inventory's default host
 * limit of 1 slot). Every release of the slots therefore hands them to the next waiting job.
 *
 * Two views of the same run:
 * - lock events: from the `released` event of one job to the `started` event of the job that
 *   the release let in (the scheduler's own record, in Redis time);
 * - lab transfers: from the end of one transfer from the source host to the start of the
 *   next one, which adds the previous job's verification and the next job's pre-flight.
 */
import type { Redis } from 'ioredis';

import { loadInventory } from '../src/config/inventory.js';
import { enqueueMigration } from '../src/jobs/producer.js';
import { openMigrationQueue } from '../src/jobs/queue.js';
import { Lab } from '../src/lab/lab.js';
import { lockKeys } from '../src/locks/store.js';
import { createLogger } from '../src/log.js';
import { startMigrationWorker } from '../src/migration/worker.js';
import { ResultWatcher } from './lib/result-watch.js';
import { summarize, type Summary } from './lib/stats.js';

export interface HandoverBenchOptions {
  /** Migrations queued at once. Default 41, which gives 40 hand-overs. */
  migrations?: number;
  progress?: (line: string) => void;
}

export interface HandoverBenchResult {
  migrations: number;
  /** Release to the next job's start, from the lock events; empty when no lock events were written. */
  lockGapMs: Summary;
  /** End of one transfer to the start of the next on the source host. */
  transferGapMs: Summary;
  lockEvents: number;
}

const requester = 'bench-handover';
const quietLogger = createLogger({ level: 'silent' });

export async function runHandoverBench(options: HandoverBenchOptions = {}): Promise<HandoverBenchResult> {
  const migrations = options.migrations ?? 41;
  const progress = options.progress ?? (() => undefined);
  const vms = Array.from({ length: migrations }, (_, index) => `hand${String(index).padStart(3, '0')}`);
  const lab = await Lab.start({
    bytesPerMiB: 1,
    hosts: [
      {
        name: 'xen-a',
        domains: vms.map((name) => ({ name, memoryMiB: 1, vcpus: 1, disks: [], vifs: [] })),
      },
      { name: 'xen-b' },
    ],
  });
  const redisUrl = lab.redis?.url as string;
  const prefix = 'bench-handover';
  const inventory = loadInventory(lab.inventoryPath);
  const queue = await openMigrationQueue({ redisUrl, prefix });
  const watcher = await ResultWatcher.open(redisUrl, prefix, requester);
  const worker = await startMigrationWorker({
    redisUrl,
    prefix,
    inventory,
    bastion: 'bench-bastion',
    logger: quietLogger,
    // More jobs than slots, so that some always wait for the one that runs.
    concurrency: 4,
  });
  try {
    for (const vm of vms) {
      await enqueueMigration(queue, inventory, {
        vm,
        source: 'xen-a',
        target: 'xen-b',
        requester,
        reason: 'lock hand-over benchmark',
      });
    }
    for (let index = 0; index < migrations; index += 1) {
      const result = await watcher.next(120_000);
      if (result.status !== 'completed') throw new Error(`Migration ${result.jobId} ended ${result.status}.`);
    }
    progress(`handover: ${migrations} migrations through one pair of hosts`);

    const events = await readLockEvents(watcher.redis, prefix);
    const lockGaps = events
      .filter(
        (event) => event.type === 'started' && event.releasedAt !== '' && event.releasedAt !== undefined,
      )
      .map((event) => Number(event.at) - Number(event.releasedAt));
    const transfers = lab.transfers
      .all()
      .filter((record) => record.source === 'xen-a' && record.outcome === 'completed')
      .sort((a, b) => a.start - b.start);
    const transferGaps = transfers
      .slice(1)
      .map((record, index) => record.start - (transfers[index]?.end ?? 0));
    return {
      migrations,
      lockGapMs: summarize(lockGaps),
      transferGapMs: summarize(transferGaps),
      lockEvents: events.length,
    };
  } finally {
    await worker.close();
    watcher.close();
    await queue.close();
    await lab.stop();
  }
}

/** Reads the scheduler's event stream as one field map per event. */
async function readLockEvents(redis: Redis, prefix: string): Promise<Array<Record<string, string>>> {
  const entries = await redis.xrange(lockKeys(prefix).events, '-', '+');
  return entries.map(([, fields]) => {
    const event: Record<string, string> = {};
    for (let index = 0; index + 1 < fields.length; index += 2) {
      event[fields[index] as string] = fields[index + 1] as string;
    }
    return event;
  });
}

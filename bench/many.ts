/**
 * Measure 4: many small migrations. `migrations` lab migrations over `hosts` hosts run
 * through 1, 2 and 4 `ferry worker` processes in turn (each with the worker's default
 * concurrency of 4), all against one Redis.
 *
 * The hosts form pairs (h00 -> h01, h02 -> h03, ...), and consecutive jobs use different
 * pairs, so that the default host limit of one migration at a time rarely makes a job wait.
 * Each run moves every VM across its pair, and the next run moves it back.
 *
 * Rate: migrations divided by the time from the first enqueue to the last result being
 * readable. Redis commands: INFO commandstats over the same interval, all clients together
 * (producer, workers, lock scheduler), commands run inside Lua scripts included.
 */
import { Redis } from 'ioredis';

import { loadInventory } from '../src/config/inventory.js';
import { enqueueMigration } from '../src/jobs/producer.js';
import { openMigrationQueue } from '../src/jobs/queue.js';
import { Lab, type LabHostOptions } from '../src/lab/lab.js';
import { commandCounts, commandDelta } from './lib/redis-stats.js';
import { ResultWatcher } from './lib/result-watch.js';
import { WorkerProcess } from './lib/worker-process.js';

export interface ManyBenchOptions {
  /** Migrations per run. Default 1000. */
  migrations?: number;
  /** Lab hosts, an even number. Default 50. */
  hosts?: number;
  /** Worker processes of each run. Default [1, 2, 4]. */
  workerCounts?: number[];
  progress?: (line: string) => void;
}

export interface ManyRun {
  workers: number;
  migrations: number;
  failed: number;
  seconds: number;
  migrationsPerSecond: number;
  redisCommandsPerMigration: number;
  /** Lua script calls (EVALSHA, EVAL) per migration, counted within redisCommandsPerMigration. */
  scriptCallsPerMigration: number;
  /** The ten most frequent commands of the run, with their calls per migration. */
  topCommands: Array<[string, number]>;
}

export interface ManyBenchResult {
  hosts: number;
  concurrencyPerWorker: number;
  runs: ManyRun[];
}

const requester = 'bench-many';
/** The worker's default concurrency, which the runs keep. */
const defaultConcurrency = 4;

export async function runManyBench(options: ManyBenchOptions = {}): Promise<ManyBenchResult> {
  const migrations = options.migrations ?? 1000;
  const hostCount = options.hosts ?? 50;
  const workerCounts = options.workerCounts ?? [1, 2, 4];
  const progress = options.progress ?? (() => undefined);
  if (hostCount < 2 || hostCount % 2 !== 0) {
    throw new Error(`Invalid hosts ${hostCount}: use an even number of at least 2.`);
  }

  const pairs = hostCount / 2;
  const vmsPerPair = Math.ceil(migrations / pairs);
  const hostName = (index: number): string => `h${String(index).padStart(2, '0')}`;
  const vmName = (pair: number, index: number): string => `m${pair}-${index}`;
  const hosts: LabHostOptions[] = Array.from({ length: hostCount }, (_, index) => ({
    name: hostName(index),
    domains:
      index % 2 === 0
        ? Array.from({ length: vmsPerPair }, (_, vm) => ({
            name: vmName(index / 2, vm),
            memoryMiB: 16,
            vcpus: 1,
            disks: [],
            vifs: [],
          }))
        : [],
  }));
  const lab = await Lab.start({ bytesPerMiB: 1, hosts });
  const redisUrl = lab.redis?.url as string;
  const stats = new Redis(redisUrl, { maxRetriesPerRequest: null });
  try {
    const inventory = loadInventory(lab.inventoryPath);
    const runs: ManyRun[] = [];
    for (const [runIndex, workers] of workerCounts.entries()) {
      const prefix = `bench-many-${runIndex + 1}`;
      const outward = runIndex % 2 === 0;
      const started = await Promise.all(
        Array.from({ length: workers }, (_, index) =>
          WorkerProcess.start({
            redisUrl,
            inventoryPath: lab.inventoryPath,
            prefix,
            bastion: `bench-w${index + 1}`,
          }),
        ),
      );
      const queue = await openMigrationQueue({ redisUrl, prefix });
      const watcher = await ResultWatcher.open(redisUrl, prefix, requester);
      try {
        const before = await commandCounts(stats);
        const firstEnqueueAt = Date.now();
        for (let job = 0; job < migrations; job += 1) {
          const pair = job % pairs;
          const [from, to] = outward ? [2 * pair, 2 * pair + 1] : [2 * pair + 1, 2 * pair];
          await enqueueMigration(queue, inventory, {
            vm: vmName(pair, Math.floor(job / pairs)),
            source: hostName(from),
            target: hostName(to),
            requester,
            reason: 'many small migrations benchmark',
          });
        }
        const results = await watcher.collect(migrations, 120_000);
        const after = await commandCounts(stats);
        const seconds = ((results.at(-1)?.readableAt ?? Date.now()) - firstEnqueueAt) / 1000;
        const delta = commandDelta(before, after);
        const total = delta.reduce((sum, [, calls]) => sum + calls, 0);
        const scripts = delta
          .filter(([name]) => name === 'evalsha' || name === 'eval')
          .reduce((sum, [, calls]) => sum + calls, 0);
        const run: ManyRun = {
          workers,
          migrations,
          failed: results.filter((result) => result.status !== 'completed').length,
          seconds,
          migrationsPerSecond: migrations / seconds,
          redisCommandsPerMigration: total / migrations,
          scriptCallsPerMigration: scripts / migrations,
          topCommands: delta.slice(0, 10).map(([name, calls]) => [name, calls / migrations]),
        };
        runs.push(run);
        progress(
          `many: ${workers} worker(s): ${run.migrationsPerSecond.toFixed(1)} migrations/s, ` +
            `${run.redisCommandsPerMigration.toFixed(0)} Redis commands per migration, ${run.failed} failed`,
        );
      } finally {
        watcher.close();
        await queue.close();
        await Promise.all(started.map((worker) => worker.stop()));
      }
    }
    return { hosts: hostCount, concurrencyPerWorker: defaultConcurrency, runs };
  } finally {
    stats.disconnect();
    await lab.stop();
  }
}

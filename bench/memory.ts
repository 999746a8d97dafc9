/**
 * Measure 5: worker memory with many tunnels at full speed. One `ferry worker` process with
 * a concurrency of `tunnels` runs that many relay-mode migrations at once, each between its
 * own pair of lab hosts, with no rate limit on the simulated senders. The worker's resident
 * set is sampled while they run, and the kernel's high-water mark (VmHWM) is read at the end.
 *
 * The relay pipes each connection with stream backpressure, so memory should not grow with
 * the amount of data moved: baselineMiB is the idle worker, peakMiB the whole run.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { loadInventory } from '../src/config/inventory.js';
import { enqueueMigration } from '../src/jobs/producer.js';
import { openMigrationQueue } from '../src/jobs/queue.js';
import { Lab, type LabHostOptions } from '../src/lab/lab.js';
import { ResultWatcher } from './lib/result-watch.js';
import { WorkerProcess } from './lib/worker-process.js';

export interface MemoryBenchOptions {
  /** Migrations, and so tunnels, at once. Default 20. */
  tunnels?: number;
  /** MiB each migration sends. Default 128. */
  mibPerTunnel?: number;
  progress?: (line: string) => void;
}

export interface MemoryBenchResult {
  tunnels: number;
  mibPerTunnel: number;
  /** Resident set of the idle worker before the first job, in MiB. */
  baselineMiB: number;
  /** High-water mark of the resident set over the worker's life (VmHWM), in MiB. */
  peakMiB: number;
  /** Largest resident set sampled while the migrations ran, in MiB. */
  peakSampledMiB: number;
  /**
   * Largest sample of the second half of the run minus the largest of the first half, in MiB.
   * It is near 0 when memory stays flat, and grows with the data moved when something buffers it.
   */
  secondHalfGrowthMiB: number;
  /** Largest number of transfers that ran at the same time. */
  concurrentTransfers: number;
  /** All migrations' bytes over the time from the first transfer's start to the last one's end, in MB/s. */
  aggregateMBPerSecond: number;
  /** Resident set samples while the migrations ran: [seconds since the first enqueue, MiB]. */
  samples: Array<[number, number]>;
}

const requester = 'bench-memory';
/** Bytes the lab sends per MiB of a VM's memory: 1 KiB, so a VM of 1 GiB nominal sends 1 MiB. */
const bytesPerMiB = 1024;

/** Reads a `Vm...:  123 kB` field of /proc/<pid>/status, in MiB. */
function statusMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (match === null) throw new Error(`/proc/${pid}/status has no ${field}.`);
  return Number(match[1]) / 1024;
}

export async function runMemoryBench(options: MemoryBenchOptions = {}): Promise<MemoryBenchResult> {
  const tunnels = options.tunnels ?? 20;
  const mibPerTunnel = options.mibPerTunnel ?? 128;
  const progress = options.progress ?? (() => undefined);
  const vmMemoryMiB = (mibPerTunnel * 1024 * 1024) / bytesPerMiB;
  const hostName = (index: number): string => `r${String(index).padStart(2, '0')}`;
  // Sources are r00..r(n-1), each with one VM, and targets are r(n)..r(2n-1).
  const hosts: LabHostOptions[] = Array.from({ length: 2 * tunnels }, (_, index) => ({
    name: hostName(index),
    totalMemoryMiB: vmMemoryMiB + 2048,
    domains:
      index < tunnels ? [{ name: `big${index}`, memoryMiB: vmMemoryMiB, vcpus: 1, disks: [], vifs: [] }] : [],
  }));

  const lab = await Lab.start({ bytesPerMiB, hosts });
  const redisUrl = lab.redis?.url as string;
  const prefix = 'bench-memory';
  const worker = await WorkerProcess.start({
    redisUrl,
    inventoryPath: lab.inventoryPath,
    prefix,
    bastion: 'bench-memory',
    concurrency: tunnels,
  });
  const queue = await openMigrationQueue({ redisUrl, prefix });
  const watcher = await ResultWatcher.open(redisUrl, prefix, requester);
  try {
    const inventory = loadInventory(lab.inventoryPath);
    const baselineMiB = statusMiB(worker.pid, 'VmRSS');
    const startedAt = Date.now();
    for (let index = 0; index < tunnels; index += 1) {
      await enqueueMigration(queue, inventory, {
        vm: `big${index}`,
        source: hostName(index),
        target: hostName(tunnels + index),
        requester,
        reason: 'worker memory benchmark',
      });
    }

    const samples: Array<[number, number]> = [];
    let finished = false;
    const done = watcher.collect(tunnels, 300_000).finally(() => {
      finished = true;
    });
    while (!finished) {
      samples.push([(Date.now() - startedAt) / 1000, statusMiB(worker.pid, 'VmRSS')]);
      await Promise.race([done.catch(() => undefined), sleep(100)]);
    }
    const results = await done;
    const failed = results.filter((result) => result.status !== 'completed');
    if (failed.length > 0) throw new Error(`${failed.length} of ${tunnels} migrations did not complete.`);
    const peakMiB = statusMiB(worker.pid, 'VmHWM');

    const transfers = lab.transfers.all().filter((record) => record.outcome === 'completed');
    const first = Math.min(...transfers.map((record) => record.start));
    const last = Math.max(...transfers.map((record) => record.end));
    const bytes = transfers.reduce((sum, record) => sum + record.bytes, 0);
    const result: MemoryBenchResult = {
      tunnels,
      mibPerTunnel,
      baselineMiB,
      peakMiB,
      peakSampledMiB: Math.max(...samples.map(([, mib]) => mib)),
      secondHalfGrowthMiB: halfGrowth(samples),
      concurrentTransfers: maxOverlap(transfers),
      aggregateMBPerSecond: bytes / 1e6 / ((last - first) / 1000),
      samples,
    };
    progress(
      `memory: ${tunnels} tunnels, peak RSS ${peakMiB.toFixed(0)} MiB (idle ${baselineMiB.toFixed(0)} MiB), ` +
        `${result.concurrentTransfers} at once, ${result.aggregateMBPerSecond.toFixed(0)} MB/s together`,
    );
    return result;
  } finally {
    watcher.close();
    await queue.close();
    await worker.stop();
    await lab.stop();
  }
}

function halfGrowth(samples: ReadonlyArray<[number, number]>): number {
  const middle = Math.floor(samples.length / 2);
  const largest = (part: ReadonlyArray<[number, number]>): number =>
    Math.max(0, ...part.map(([, mib]) => mib));
  return largest(samples.slice(middle)) - largest(samples.slice(0, middle));
}

/** Returns the largest number of intervals that overlap at one instant. */
function maxOverlap(intervals: ReadonlyArray<{ start: number; end: number }>): number {
  const edges = intervals.flatMap((interval) => [
    [interval.start, 1],
    [interval.end, -1],
  ]);
  // At equal times an end sorts before a start, so touching intervals do not count as overlapping.
  edges.sort((a, b) => (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number));
  let open = 0;
  let max = 0;
  for (const [, change] of edges) {
    open += change as number;
    max = Math.max(max, open);
  }
  return max;
}

/**
 * Measure 2: orchestration overhead. Migrations of a lab VM with (almost) no memory run one
 * at a time through an in-process worker, back and forth between two hosts. The first variant
 * keeps SSH connections between jobs (the worker's default). The second closes every
 * connection as soon as it is released.
 *
 * Two windows per migration, both in epoch milliseconds:
 * - to start: from enqueue to the moment the simulated xend received `xm migrate` (the
 *   transfer record's start);
 * - to result: from the end of the transfer (the record's end, when `xm migrate` returns) to
 *   the moment the result is readable on the requester's result stream.
 * Within each window, "lab" is the time covered by at least one command ferry ran on a host
 * (ExecRecorder: sshd session, shell, simulated xm), and "ferry" is the rest: the queue,
 * Redis, locks, SSH handshakes and channels, and ferry's own code. In the second window,
 * ferry's wait for the detached `xm migrate` to exit counts as ferry's: the host runs ferry's
 * poll loop (src/drivers/detached.ts), which checks every 0.1 s.
 */
import { loadInventory } from '../src/config/inventory.js';
import { enqueueMigration } from '../src/jobs/producer.js';
import { openMigrationQueue } from '../src/jobs/queue.js';
import { Lab } from '../src/lab/lab.js';
import type { TransferRecord } from '../src/lab/transfers.js';
import { createLogger } from '../src/log.js';
import { startMigrationWorker } from '../src/migration/worker.js';
import { ExecRecorder, isDetachedWait, type ExecRecord } from './lib/exec-recorder.js';
import { ResultWatcher } from './lib/result-watch.js';
import { coveredMs, summarize, type Summary } from './lib/stats.js';

export interface OverheadBenchOptions {
  /** Measured migrations per variant. Default 100. */
  migrations?: number;
  /** Migrations run before measuring, per variant, so that code is compiled and caches are warm. Default 3. */
  warmup?: number;
  progress?: (line: string) => void;
}

/** One measured migration; every field is in milliseconds. */
export interface MigrationTiming {
  toStartMs: number;
  toStartLabMs: number;
  toResultMs: number;
  toResultLabMs: number;
  /** Part of toResultMs spent waiting for ferry's poll on the host to see `xm migrate` exit. */
  exitPollMs: number;
}

export interface WindowFigures {
  total: Summary;
  ferry: Summary;
  lab: Summary;
}

export interface OverheadVariant {
  reuseConnections: boolean;
  migrations: number;
  handshakesPerMigration: number;
  toStart: WindowFigures;
  toResult: WindowFigures & { exitPoll: Summary };
  /** ferry's own time of both windows together, per migration. */
  ferryBoth: Summary;
  timings: MigrationTiming[];
}

export interface OverheadBenchResult {
  variants: OverheadVariant[];
}

const vm = 'bench01';
const requester = 'bench-overhead';
const quietLogger = createLogger({ level: 'silent' });

export async function runOverheadBench(options: OverheadBenchOptions = {}): Promise<OverheadBenchResult> {
  const migrations = options.migrations ?? 100;
  const warmup = options.warmup ?? 3;
  const progress = options.progress ?? (() => undefined);
  const lab = await Lab.start({
    // One byte per MiB and a 1 MiB VM: the transfer itself takes no measurable time.
    bytesPerMiB: 1,
    hosts: [
      { name: 'xen-a', domains: [{ name: vm, memoryMiB: 1, vcpus: 1, disks: [], vifs: [] }] },
      { name: 'xen-b' },
    ],
  });
  const recorder = new ExecRecorder();
  try {
    recorder.start();
    const variants: OverheadVariant[] = [];
    for (const reuseConnections of [true, false]) {
      variants.push(await runVariant(lab, recorder, reuseConnections, migrations, warmup, progress));
    }
    return { variants };
  } finally {
    recorder.stop();
    await lab.stop();
  }
}

async function runVariant(
  lab: Lab,
  recorder: ExecRecorder,
  reuseConnections: boolean,
  migrations: number,
  warmup: number,
  progress: (line: string) => void,
): Promise<OverheadVariant> {
  const redisUrl = lab.redis?.url as string;
  const prefix = `bench-overhead-${reuseConnections ? 'reuse' : 'fresh'}`;
  const inventory = loadInventory(lab.inventoryPath);
  const queue = await openMigrationQueue({ redisUrl, prefix });
  const watcher = await ResultWatcher.open(redisUrl, prefix, requester);
  const worker = await startMigrationWorker({
    redisUrl,
    prefix,
    inventory,
    bastion: 'bench-bastion',
    logger: quietLogger,
    concurrency: 1,
    // 1 ms: a released connection closes at once, so every job connects again.
    ...(reuseConnections ? {} : { sshIdleTimeoutMs: 1 }),
  });

  const timings: MigrationTiming[] = [];
  let handshakesBefore = 0;
  try {
    for (let index = 0; index < warmup + migrations; index += 1) {
      if (index === warmup) handshakesBefore = worker.pool.handshakes;
      // The VM goes back and forth; the previous variant may have left it on either host.
      const onA = lab
        .host('xen-a')
        .sim.domains()
        .some((domain) => domain.name === vm);
      const [source, target] = onA ? ['xen-a', 'xen-b'] : ['xen-b', 'xen-a'];
      const enqueueAt = Date.now();
      const { jobId } = await enqueueMigration(queue, inventory, {
        vm,
        source,
        target,
        requester,
        reason: 'orchestration overhead benchmark',
      });
      const result = await watcher.next(60_000);
      if (result.jobId !== jobId || result.status !== 'completed') {
        throw new Error(`Migration ${jobId} ended ${result.status} (result of job ${result.jobId}).`);
      }
      const transfer = transferSince(lab, source, enqueueAt);
      if (index >= warmup) timings.push(timingOf(recorder.records, enqueueAt, transfer, result.readableAt));
    }
  } finally {
    await worker.close();
    watcher.close();
    await queue.close();
  }
  const label = reuseConnections ? 'reused connections' : 'new connections';
  progress(`overhead: ${migrations} migrations with ${label}`);

  const ferryOf = (total: number, lab: number): number => total - lab;
  return {
    reuseConnections,
    migrations,
    handshakesPerMigration: (worker.pool.handshakes - handshakesBefore) / migrations,
    toStart: {
      total: summarize(timings.map((timing) => timing.toStartMs)),
      ferry: summarize(timings.map((timing) => ferryOf(timing.toStartMs, timing.toStartLabMs))),
      lab: summarize(timings.map((timing) => timing.toStartLabMs)),
    },
    toResult: {
      total: summarize(timings.map((timing) => timing.toResultMs)),
      ferry: summarize(timings.map((timing) => ferryOf(timing.toResultMs, timing.toResultLabMs))),
      lab: summarize(timings.map((timing) => timing.toResultLabMs)),
      exitPoll: summarize(timings.map((timing) => timing.exitPollMs)),
    },
    ferryBoth: summarize(
      timings.map(
        (timing) =>
          ferryOf(timing.toStartMs, timing.toStartLabMs) + ferryOf(timing.toResultMs, timing.toResultLabMs),
      ),
    ),
    timings,
  };
}

/** Returns the completed transfer of the benchmark VM from `source` that started after `since`. */
function transferSince(lab: Lab, source: string, since: number): TransferRecord {
  const transfer = lab.transfers
    .all()
    .find(
      (record) =>
        record.vm === vm &&
        record.source === source &&
        record.outcome === 'completed' &&
        record.start >= since,
    );
  if (transfer === undefined) throw new Error(`The lab recorded no transfer of ${vm} from ${source}.`);
  return transfer;
}

function timingOf(
  records: readonly ExecRecord[],
  enqueueAt: number,
  transfer: TransferRecord,
  readableAt: number,
): MigrationTiming {
  const labCommands = records.filter((record) => !isDetachedWait(record));
  const exitWaits = records.filter(isDetachedWait);
  return {
    toStartMs: transfer.start - enqueueAt,
    toStartLabMs: coveredMs(labCommands, enqueueAt, transfer.start),
    toResultMs: readableAt - transfer.end,
    toResultLabMs: coveredMs(labCommands, transfer.end, readableAt),
    exitPollMs: coveredMs(exitWaits, transfer.end, readableAt),
  };
}

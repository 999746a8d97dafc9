/**
 * `ferry worker`: run a migration worker on this bastion until SIGINT or SIGTERM. The same
 * runner serves workers/bastion.ts, which takes its settings from the environment only.
 */
import type { Command } from 'commander';

import { loadInventory, namePattern } from '../config/inventory.js';
import { FerryError } from '../errors.js';
import { checkPrefix } from '../jobs/queue.js';
import { quoteValue } from '../jobs/quote.js';
import { createLogger } from '../log.js';
import type { MigrationWorkerOptions } from '../migration/worker.js';
import { exitCodes } from './exit.js';
import { resolveSettings, wholeNumber, type GlobalOptions } from './settings.js';

type Environment = Record<string, string | undefined>;

/** Highest --concurrency accepted; a bastion runs few migrations at once. */
const maxConcurrency = 64;

const signalNumbers: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGTERM: 15 };

/**
 * Starts the worker and returns once it has stopped: after SIGINT or SIGTERM (running jobs
 * finish first), or once the queue is drained when `exitWhenDrained` is set. A second signal
 * exits at once with 128 + the signal number, leaving running jobs to BullMQ's stall recovery.
 */
export async function runWorkerUntilStopped(options: MigrationWorkerOptions): Promise<void> {
  const logger = options.logger ?? createLogger({ name: 'ferry-worker' });
  // Loaded here rather than at the top, so that the producer commands do not load the SSH code.
  const { startMigrationWorker } = await import('../migration/worker.js');
  const handle = await startMigrationWorker({ ...options, logger });

  // A failed close() would leave `stopped` pending forever, so it ends the wait instead.
  let failStop: (error: unknown) => void = () => {};
  const stopFailed = new Promise<never>((_resolve, reject) => {
    failStop = reject;
  });

  let signalsSeen = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signalsSeen += 1;
    if (signalsSeen === 1) {
      logger.info({ signal }, 'Worker stopping; running jobs finish first');
      handle.close().catch((error: unknown) => {
        logger.error({ err: error }, 'Worker failed to stop');
        failStop(error);
      });
      return;
    }
    logger.warn({ signal }, 'Worker exiting without waiting for running jobs');
    process.exit(128 + (signalNumbers[signal] ?? 0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    await Promise.race([handle.stopped, stopFailed]);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function parseConcurrency(text: string, origin: string): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < 1 || value > maxConcurrency) {
    throw new FerryError(
      'INVALID_CONFIG',
      `Invalid ${origin} ${quoteValue(text)}: use a whole number from 1 to ${maxConcurrency}.`,
      { context: { field: origin } },
    );
  }
  return value;
}

function parseFlag(text: string, origin: string): boolean {
  const normalized = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(normalized)) return true;
  if (['', '0', 'false', 'no', 'off'].includes(normalized)) return false;
  throw new FerryError('INVALID_CONFIG', `Invalid ${origin} ${quoteValue(text)}: use true or false.`, {
    context: { field: origin },
  });
}

function checkBastion(name: string, origin: string): string {
  if (!namePattern.test(name)) {
    throw new FerryError(
      'INVALID_CONFIG',
      `Invalid ${origin} ${quoteValue(name)}: use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit.`,
      { context: { field: origin } },
    );
  }
  return name;
}

interface WorkerFlags {
  concurrency?: number;
  exitWhenDrained?: boolean;
  bastion?: string;
  maxMigrations?: number;
}

/** Highest --max-migrations accepted. */
const maxGlobalCap = 10_000;

/**
 * Builds the worker's options from flags and the environment: FERRY_REDIS_URL (then REDIS_URL),
 * FERRY_INVENTORY, FERRY_PREFIX, FERRY_CONCURRENCY, FERRY_EXIT_WHEN_DRAINED, FERRY_BASTION, and the
 * timings FERRY_LOCK_DURATION_MS, FERRY_STALLED_INTERVAL_MS, FERRY_NO_PROGRESS_TIMEOUT_MS and
 * FERRY_SHUTDOWN_GRACE_MS, and the lock scheduler's FERRY_MAX_MIGRATIONS, FERRY_LEASE_MS,
 * FERRY_SLOT_AGEING_MS and FERRY_SLOT_MAX_WAIT_MS.
 * Flags win over the environment. Throws INVALID_CONFIG or INVALID_INVENTORY.
 */
export function workerOptionsFrom(
  globals: GlobalOptions,
  flags: WorkerFlags,
  env: Environment = process.env,
): MigrationWorkerOptions {
  const settings = resolveSettings(globals, env);
  checkPrefix(settings.prefix);
  const options: MigrationWorkerOptions = {
    redisUrl: settings.redisUrl,
    prefix: settings.prefix,
    inventory: loadInventory(settings.inventoryPath),
  };

  const concurrencyText = env.FERRY_CONCURRENCY;
  if (flags.concurrency !== undefined) {
    options.concurrency = flags.concurrency;
  } else if (concurrencyText !== undefined && concurrencyText !== '') {
    options.concurrency = parseConcurrency(concurrencyText, 'FERRY_CONCURRENCY');
  }

  const drainedText = env.FERRY_EXIT_WHEN_DRAINED;
  if (flags.exitWhenDrained === true) {
    options.exitWhenDrained = true;
  } else if (drainedText !== undefined) {
    options.exitWhenDrained = parseFlag(drainedText, 'FERRY_EXIT_WHEN_DRAINED');
  }

  const bastion = flags.bastion ?? env.FERRY_BASTION;
  if (bastion !== undefined && bastion !== '') {
    options.bastion = checkBastion(bastion, flags.bastion === undefined ? 'FERRY_BASTION' : '--bastion');
  }
  for (const [variable, field] of durationVariables) {
    const text = env[variable];
    if (text !== undefined && text !== '') options[field] = parseMilliseconds(text, variable);
  }
  const maxMigrationsText = env.FERRY_MAX_MIGRATIONS;
  if (flags.maxMigrations !== undefined) {
    options.maxMigrations = flags.maxMigrations;
  } else if (maxMigrationsText !== undefined && maxMigrationsText !== '') {
    options.maxMigrations = parseMaxMigrations(maxMigrationsText, 'FERRY_MAX_MIGRATIONS');
  }
  return options;
}

/** Timing settings read from the environment, in milliseconds. */
const durationVariables = [
  ['FERRY_LOCK_DURATION_MS', 'lockDurationMs'],
  ['FERRY_STALLED_INTERVAL_MS', 'stalledIntervalMs'],
  ['FERRY_NO_PROGRESS_TIMEOUT_MS', 'noProgressTimeoutMs'],
  ['FERRY_SHUTDOWN_GRACE_MS', 'shutdownGraceMs'],
  ['FERRY_LEASE_MS', 'leaseMs'],
  ['FERRY_SLOT_AGEING_MS', 'slotAgeingMs'],
  ['FERRY_SLOT_MAX_WAIT_MS', 'slotMaxWaitMs'],
] as const satisfies ReadonlyArray<readonly [string, keyof MigrationWorkerOptions]>;

function parseMilliseconds(text: string, origin: string): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < 100) {
    throw new FerryError(
      'INVALID_CONFIG',
      `Invalid ${origin} ${quoteValue(text)}: use a whole number of milliseconds, at least 100.`,
      { context: { field: origin } },
    );
  }
  return value;
}

function parseMaxMigrations(text: string, origin: string): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < 1 || value > maxGlobalCap) {
    throw new FerryError(
      'INVALID_CONFIG',
      `Invalid ${origin} ${quoteValue(text)}: use a whole number from 1 to ${maxGlobalCap}.`,
      { context: { field: origin } },
    );
  }
  return value;
}

interface WorkerCommandOptions extends GlobalOptions, WorkerFlags {}

export function addWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run a migration worker on this bastion until SIGINT or SIGTERM')
    .option(
      '--concurrency <n>',
      `migrations run at once by this worker, 1 to ${maxConcurrency} (default: $FERRY_CONCURRENCY, then the worker's default)`,
      wholeNumber(maxConcurrency),
    )
    .option(
      '--exit-when-drained',
      'exit once the queue is empty and no job runs (default: $FERRY_EXIT_WHEN_DRAINED)',
    )
    .option(
      '--bastion <name>',
      'name of this bastion in results and logs (default: $FERRY_BASTION, then the host name)',
    )
    .option(
      '--max-migrations <n>',
      `migrations at once across all workers, 1 to ${maxGlobalCap}; give every worker the same value (default: $FERRY_MAX_MIGRATIONS, then no cap)`,
      wholeNumber(maxGlobalCap),
    )
    .addHelpText(
      'after',
      '\nLogs go to stdout as JSON lines; FERRY_LOG_LEVEL sets the level (default info).\n' +
        'The first SIGINT or SIGTERM lets running jobs finish; a second one exits at once.',
    )
    .action(async (_options: WorkerCommandOptions, command: Command) => {
      const options = command.optsWithGlobals<WorkerCommandOptions>();
      await runWorkerUntilStopped(workerOptionsFrom(options, options));
      process.exitCode = exitCodes.ok;
    });
}

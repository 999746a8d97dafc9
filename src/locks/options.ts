/**
 * Options of the lock scheduler: the public type with the default of each field, and the one
 * function that validates and compiles it. Durations are milliseconds throughout.
 */
import { FerryError } from '../errors.js';

export interface LockOptions {
  /**
   * Lease of a job's VM lock and host slots. The worker renews it every sixth of this while the
   * job runs, and gives the job up as lost when no renewal has succeeded for half of it, so
   * that it stops before the lease can expire. A lease expires only when no worker renews it,
   * for example after the worker died and no other worker took the job over.
   * @defaultValue 30000 (30 s)
   */
  leaseMs?: number;
  /**
   * A job that has waited this long for its slots reserves them: no job that started waiting
   * later takes a slot it needs, until all of them are free together. Passing older jobs is
   * allowed before that, so that hosts do not idle behind a job whose other host is busy.
   * @defaultValue 600000 (10 min)
   */
  ageingMs?: number;
  /**
   * A job that has waited this long for its lock and slots fails, naming the busy host.
   * @defaultValue 21600000 (6 h)
   */
  maxWaitMs?: number;
  /**
   * Migrations that may run at once across all workers and hosts (the global cap). Each
   * worker passes its own value with each job, so give every worker the same one.
   * @defaultValue undefined (no global cap)
   */
  maxMigrations?: number;
  /**
   * Interval between re-checks of a host that shows a migration no lock accounts for (such as
   * a `migrating-` domain left by a worker that died).
   * @defaultValue 1000 (1 s)
   */
  inFlightRecheckMs?: number;
}

export interface CompiledLockOptions {
  leaseMs: number;
  renewEveryMs: number;
  /** Time without a successful renewal after which the lease counts as lost. */
  renewalDeadlineMs: number;
  /** Interval at which a waiting job refreshes its place in the queue. */
  heartbeatMs: number;
  ageingMs: number;
  maxWaitMs: number;
  maxMigrations: number | undefined;
  inFlightRecheckMs: number;
}

export const lockDefaults = {
  leaseMs: 30_000,
  ageingMs: 600_000,
  maxWaitMs: 6 * 3_600_000,
  inFlightRecheckMs: 1_000,
} as const;

/** Shortest lease accepted: renewals every sixth of it must still fit a Redis round trip. */
const minLeaseMs = 600;

function wholeNumber(field: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new FerryError(
      'INVALID_CONFIG',
      `Invalid ${field} ${String(value)}: use a whole number of at least ${min}.`,
      { context: { field } },
    );
  }
  return value;
}

/** Validates lock options and fills in the defaults. Throws INVALID_CONFIG naming the field. */
export function compileLockOptions(options: LockOptions = {}): CompiledLockOptions {
  const leaseMs = wholeNumber('leaseMs', options.leaseMs, lockDefaults.leaseMs, minLeaseMs);
  return {
    leaseMs,
    renewEveryMs: Math.floor(leaseMs / 6),
    renewalDeadlineMs: Math.floor(leaseMs / 2),
    heartbeatMs: Math.floor(leaseMs / 3),
    ageingMs: wholeNumber('ageingMs', options.ageingMs, lockDefaults.ageingMs, 0),
    maxWaitMs: wholeNumber('maxWaitMs', options.maxWaitMs, lockDefaults.maxWaitMs, 1),
    maxMigrations:
      options.maxMigrations === undefined
        ? undefined
        : wholeNumber('maxMigrations', options.maxMigrations, 1, 1),
    inFlightRecheckMs: wholeNumber(
      'inFlightRecheckMs',
      options.inFlightRecheckMs,
      lockDefaults.inFlightRecheckMs,
      10,
    ),
  };
}

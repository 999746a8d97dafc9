/** Exit codes of the `ferry` command, and how errors become one line on stderr. */
import { CommanderError } from 'commander';

import { isFerryError, type ErrorCode } from '../errors.js';
import type { MigrationState } from '../jobs/producer.js';

export const exitCodes = {
  /** The command did its work; with --wait, the migration completed. */
  ok: 0,
  /** With --wait, the migration failed or was cancelled. */
  migrationFailed: 1,
  /** Invalid input: a bad option, request, inventory or configuration, or an unknown job id. */
  invalidInput: 2,
  /** With --wait, the migration needs a person to look at where the VM runs. */
  needsAttention: 3,
  /** With --wait --timeout, the migration had not ended when the timeout passed. */
  waitTimedOut: 4,
  /** Ferry could not do the work: Redis unavailable, or an unexpected error. */
  unavailable: 5,
} as const;

/** The exit codes as --help shows them. */
export const exitCodesHelp = `
Exit codes:
  0  done; with --wait, the migration completed
  1  with --wait, the migration failed or was cancelled
  2  invalid input: options, request, inventory, configuration or job id
  3  with --wait, the migration needs attention (check where the VM runs)
  4  with --wait --timeout, the migration had not ended in time
  5  Redis unavailable, or an unexpected error`;

const inputErrorCodes: ReadonlySet<ErrorCode> = new Set([
  'INVALID_REQUEST',
  'UNKNOWN_HOST',
  'INVALID_INVENTORY',
  'INVALID_CONFIG',
  'JOB_NOT_FOUND',
]);

/** Returns the exit code that reports a migration's final or current state. */
export function exitCodeForState(state: MigrationState): number {
  switch (state) {
    case 'completed':
      return exitCodes.ok;
    case 'failed':
    case 'cancelled':
      return exitCodes.migrationFailed;
    case 'needs-attention':
      return exitCodes.needsAttention;
    default:
      return exitCodes.waitTimedOut;
  }
}

/**
 * Prints `ferry: <message>` for an error and returns the exit code. FerryErrors print their
 * message only; other errors are bugs, so their stack follows when FERRY_LOG_LEVEL is debug
 * or trace. Commander has already printed its own usage errors.
 */
export function reportError(error: unknown): number {
  if (error instanceof CommanderError) {
    return error.exitCode === 0 ? exitCodes.ok : exitCodes.invalidInput;
  }
  if (isFerryError(error)) {
    console.error(`ferry: ${error.message}`);
    return inputErrorCodes.has(error.code) ? exitCodes.invalidInput : exitCodes.unavailable;
  }
  const message = error instanceof Error ? error.message : String(error);
  console.error(`ferry: ${message}`);
  const level = process.env.FERRY_LOG_LEVEL;
  if ((level === 'debug' || level === 'trace') && error instanceof Error && error.stack !== undefined) {
    console.error(error.stack);
  }
  return exitCodes.unavailable;
}

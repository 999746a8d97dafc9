/**
 * Logging: one pino logger per process and a child logger per job. Messages are short constant
 * sentences; ids and numbers go in fields and errors under `err`.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

import { FerryError } from './errors.js';

/**
 * Fields whose values never reach a log line, at the top level and one level down. Deeper
 * secrets are not covered: pass credentials to loggers neither whole nor nested.
 */
export const redactedPaths = [
  'password',
  'token',
  'privateKey',
  'passphrase',
  'authorization',
  '*.password',
  '*.token',
  '*.privateKey',
  '*.passphrase',
  '*.authorization',
];

export const defaultLogLevel = 'info';

export interface CreateLoggerOptions {
  /** Value of the `name` field on every line. Default 'ferry'. */
  name?: string;
  /** Minimum level: fatal, error, warn, info, debug, trace or silent. Default FERRY_LOG_LEVEL, else info. */
  level?: string;
  /** Destination of the JSON lines. Default stdout. */
  destination?: DestinationStream;
}

/** Context bound to every line a job's logger writes. */
export interface JobLogContext {
  jobId: string;
  vm: string;
  source: string;
  target: string;
  attempt: number;
  bastion: string;
}

function resolveLevel(level: string | undefined): string {
  const fromEnvironment = process.env.FERRY_LOG_LEVEL;
  const chosen =
    level ?? (fromEnvironment === undefined || fromEnvironment === '' ? defaultLogLevel : fromEnvironment);
  const known = [...Object.keys(pino.levels.values), 'silent'];
  if (!known.includes(chosen)) {
    const origin = level === undefined ? 'FERRY_LOG_LEVEL' : 'log level';
    throw new FerryError(
      'INVALID_CONFIG',
      `Invalid ${origin} "${chosen.slice(0, 20)}": use one of ${known.join(', ')}.`,
      {
        context: { field: origin },
      },
    );
  }
  return chosen;
}

/** Creates the process's logger, with secret-looking fields redacted. Throws INVALID_CONFIG on an unknown level. */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const settings = {
    name: options.name ?? 'ferry',
    level: resolveLevel(options.level),
    redact: { paths: redactedPaths, censor: '[redacted]' },
  };
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
}

/** Returns a child logger that adds the job's ids to every line. */
export function jobLogger(base: Logger, context: JobLogContext): Logger {
  return base.child({ ...context });
}

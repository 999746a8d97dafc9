/**
 * Connection options: the public type with its defaults, and the one function that validates
 * and compiles it. Durations are milliseconds throughout.
 */

import { FerryError } from '../errors.js';

export interface ConnectOptions {
  /**
   * Time allowed for the TCP connect, key exchange and authentication together.
   * @defaultValue 20000 (20 s)
   */
  readyTimeoutMs?: number;
  /**
   * Interval between keepalive requests on an idle connection. Without keepalives a peer that
   * vanishes gives no event at all.
   * @defaultValue 15000 (15 s)
   */
  keepaliveIntervalMs?: number;
  /**
   * Unanswered keepalives after which the connection is ended with SSH_TIMEOUT; with the
   * defaults a dead peer is noticed after about 60 s.
   * @defaultValue 4
   */
  keepaliveCountMax?: number;
  /**
   * Sessions (exec channels) open at once on one connection; further exec calls wait for a
   * free one. OpenSSH's sshd rejects sessions beyond its MaxSessions, which defaults to 10.
   * Forwarded channels do not count.
   * @defaultValue 10
   */
  maxSessions?: number;
  /** Aborts the connect attempt; the returned promise then rejects with `signal.reason`. */
  signal?: AbortSignal;
}

export interface CompiledConnectOptions {
  readyTimeoutMs: number;
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  maxSessions: number;
}

export const connectDefaults: CompiledConnectOptions = {
  readyTimeoutMs: 20_000,
  keepaliveIntervalMs: 15_000,
  keepaliveCountMax: 4,
  maxSessions: 10,
};

/** Validates connect options and fills in the defaults. Throws INVALID_CONFIG naming the field. */
export function compileConnectOptions(options: ConnectOptions = {}): CompiledConnectOptions {
  return {
    readyTimeoutMs: positiveInteger('readyTimeoutMs', options.readyTimeoutMs, connectDefaults.readyTimeoutMs),
    keepaliveIntervalMs: positiveInteger(
      'keepaliveIntervalMs',
      options.keepaliveIntervalMs,
      connectDefaults.keepaliveIntervalMs,
    ),
    keepaliveCountMax: positiveInteger(
      'keepaliveCountMax',
      options.keepaliveCountMax,
      connectDefaults.keepaliveCountMax,
    ),
    maxSessions: positiveInteger('maxSessions', options.maxSessions, connectDefaults.maxSessions),
  };
}

/** Returns `value`, or `fallback` when it is undefined; throws INVALID_CONFIG for anything but a positive integer. */
export function positiveInteger(field: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new FerryError(
      'INVALID_CONFIG',
      `Invalid ${field}: ${String(value)}; expected a positive integer.`,
      {
        context: { field },
      },
    );
  }
  return value;
}

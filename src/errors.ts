/**
 * The one errors module. Every failure ferry raises is a FerryError with a stable code, a
 * class (transient failures are retried, permanent ones are not, and `attention` ones need a
 * person) and readonly context. Retry decisions look at `code` or `retryable`, never at
 * message text.
 */

export type ErrorClass = 'transient' | 'permanent' | 'attention';

/** Every error code, with its class. Codes are stable: logs, results and the API carry them. */
export const errorCodes = {
  INVALID_REQUEST: 'permanent',
  INVALID_INVENTORY: 'permanent',
  INVALID_CONFIG: 'permanent',
  UNKNOWN_HOST: 'permanent',
  HOST_KEY_MISMATCH: 'permanent',
  HOST_KEY_UNKNOWN: 'permanent',
  AUTH_FAILED: 'permanent',
  SSH_CONNECT_FAILED: 'transient',
  SSH_TIMEOUT: 'transient',
  SSH_DISCONNECTED: 'transient',
  COMMAND_FAILED: 'permanent',
  FORWARDING_PROHIBITED: 'permanent',
  TUNNEL_FAILED: 'transient',
  TUNNEL_PORT_TAKEN: 'transient',
  VM_NOT_FOUND: 'permanent',
  VM_NOT_RUNNING: 'permanent',
  VM_ON_TARGET: 'permanent',
  MIGRATION_IN_FLIGHT: 'transient',
  PHASE_TIMEOUT: 'transient',
  TARGET_MEMORY_SHORT: 'permanent',
  TARGET_BRIDGE_MISSING: 'permanent',
  TARGET_STORAGE_MISSING: 'permanent',
  RELOCATION_REFUSED: 'transient',
  RELOCATION_REJECTED: 'permanent',
  DOMAIN_CONSTRUCTION_FAILED: 'permanent',
  NO_PROGRESS: 'transient',
  MIGRATE_FAILED: 'transient',
  MIGRATION_STALLED: 'transient',
  MIGRATION_NOT_CONVERGING: 'permanent',
  MONITOR_UNAVAILABLE: 'transient',
  VERIFY_FAILED: 'attention',
  REDIS_UNAVAILABLE: 'transient',
  JOB_NOT_FOUND: 'permanent',
  CANCELLED: 'permanent',
  SLOT_WAIT_TIMEOUT: 'permanent',
  LEASE_LOST: 'attention',
} as const satisfies Record<string, ErrorClass>;

export type ErrorCode = keyof typeof errorCodes;

/** Context attached to an error; every field is optional because errors arise at any layer. */
export interface ErrorContext {
  jobId?: string;
  vm?: string;
  host?: string;
  attempt?: number;
  phase?: string;
  field?: string;
  [key: string]: unknown;
}

export class FerryError extends Error {
  readonly code: ErrorCode;
  readonly errorClass: ErrorClass;
  readonly context: Readonly<ErrorContext>;

  constructor(code: ErrorCode, message: string, options: { context?: ErrorContext; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'FerryError';
    this.code = code;
    this.errorClass = errorCodes[code];
    this.context = Object.freeze({ ...options.context });
  }

  get retryable(): boolean {
    return this.errorClass === 'transient';
  }

  /** Returns a copy with more context, keeping code, message and cause. */
  withContext(context: ErrorContext): FerryError {
    const copy = new FerryError(this.code, this.message, {
      context: { ...this.context, ...context },
      cause: this.cause,
    });
    copy.stack = this.stack;
    return copy;
  }

  toJSON(): { code: ErrorCode; message: string; context: ErrorContext } {
    return { code: this.code, message: this.message, context: { ...this.context } };
  }
}

export function isFerryError(error: unknown, code?: ErrorCode): error is FerryError {
  return error instanceof FerryError && (code === undefined || error.code === code);
}

/** Turns anything thrown into an Error, for catch sites that receive `unknown`. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : JSON.stringify(thrown));
}

/**
 * Errors that the front ends (HTTP API, chat) raise themselves, each with a stable code and the
 * HTTP status it maps to. Errors from the core arrive as FerryError and are mapped by
 * `httpStatusOf`; chat replies show the message of either kind.
 */
import { isFerryError, type ErrorCode } from '../../src/errors.js';

/** Every code the front ends raise, with its HTTP status. Codes are stable: clients branch on them. */
export const producerErrorStatuses = {
  /** The body, a query parameter, a path parameter or a header is malformed. */
  INVALID_REQUEST: 400,
  /** The body is not valid JSON. */
  INVALID_JSON: 400,
  /** No API token, an unknown one, or a bad Slack signature. */
  UNAUTHORIZED: 401,
  /** The token may not name one of the hosts, or may not open the dashboard. */
  FORBIDDEN: 403,
  /** No such route, or no job this token may see. */
  NOT_FOUND: 404,
  /** A request with the same Idempotency-Key, or the same migration, is still being queued. */
  CONFLICT: 409,
  /** The body is larger than the configured limit. */
  PAYLOAD_TOO_LARGE: 413,
  /** The body is not JSON (or a form, where a form is expected). */
  UNSUPPORTED_MEDIA_TYPE: 415,
  /** The Idempotency-Key was used before with a different request. */
  IDEMPOTENCY_KEY_REUSED: 422,
  /** The token made more requests than its rate limit allows. */
  RATE_LIMITED: 429,
  /** A bug: the API log has the details. */
  INTERNAL_ERROR: 500,
  /** Redis cannot be reached; retry later. */
  UNAVAILABLE: 503,
} as const;

export type ProducerErrorCode = keyof typeof producerErrorStatuses;

export interface ProducerErrorOptions {
  /** Fields (body paths, query or path parameters, header names) the error is about. */
  fields?: string[];
  /** Response headers to add, such as Retry-After. */
  headers?: Record<string, string>;
  cause?: unknown;
}

export class ProducerError extends Error {
  readonly code: ProducerErrorCode;
  readonly status: number;
  readonly fields: readonly string[];
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ProducerErrorCode, message: string, options: ProducerErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = 'ProducerError';
    this.code = code;
    this.status = producerErrorStatuses[code];
    this.fields = options.fields ?? [];
    this.headers = options.headers ?? {};
  }
}

export function isProducerError(error: unknown, code?: ProducerErrorCode): error is ProducerError {
  return error instanceof ProducerError && (code === undefined || error.code === code);
}

const ferryErrorStatuses: Partial<Record<ErrorCode, number>> = {
  INVALID_REQUEST: 400,
  UNKNOWN_HOST: 400,
  JOB_NOT_FOUND: 404,
  REDIS_UNAVAILABLE: 503,
};

/** Returns the HTTP status for an error from the core or the front ends; 500 for anything else. */
export function httpStatusOf(error: unknown): number {
  if (isProducerError(error)) return error.status;
  if (isFerryError(error)) return ferryErrorStatuses[error.code] ?? 500;
  return 500;
}

/** Returns the fields a FerryError or ProducerError names, for the response body. */
export function fieldsOf(error: unknown): string[] {
  if (isProducerError(error)) return [...error.fields];
  if (isFerryError(error)) {
    const fields = error.context.fields;
    if (Array.isArray(fields)) return fields.filter((field): field is string => typeof field === 'string');
    if (typeof error.context.field === 'string') return [error.context.field];
  }
  return [];
}

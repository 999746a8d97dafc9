/**
 * How every error becomes a response: `{"error": {"code", "message", "fields"?}}` with the
 * matching status. Client mistakes caught by fastify itself (bad JSON, body too large, wrong
 * content type) get the same shape and a 4xx. Only bugs produce a 500, and those are logged.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

import { isFerryError } from '../../src/errors.js';
import {
  fieldsOf,
  httpStatusOf,
  isProducerError,
  ProducerError,
  type ProducerErrorCode,
} from '../common/errors.js';

export interface ErrorBody {
  error: { code: string; message: string; fields?: string[] };
}

/** Fastify's own client-error codes, with the code and message the API returns for each. */
const fastifyErrors: Record<string, { code: ProducerErrorCode; message: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: {
    code: 'PAYLOAD_TOO_LARGE',
    message: 'The request body is larger than this server accepts: send a smaller body.',
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: 'The Content-Type is not supported here: send application/json.',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    code: 'INVALID_JSON',
    message: 'The body is missing but the Content-Type is JSON: send a JSON object.',
  },
  FST_ERR_CTP_INVALID_JSON_BODY: {
    code: 'INVALID_JSON',
    message:
      'The body is not valid JSON, or sets __proto__ or constructor.prototype: send a plain JSON object.',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    code: 'INVALID_REQUEST',
    message: 'The Content-Length does not match the body: send the exact length.',
  },
};

/** Returns the response body of an error. */
export function errorBody(code: string, message: string, fields: readonly string[] = []): ErrorBody {
  return fields.length === 0
    ? { error: { code, message } }
    : { error: { code, message, fields: [...fields] } };
}

/** Maps an error from a handler, a hook or fastify to its status and body. */
export function describeError(error: unknown): {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
} {
  if (isProducerError(error)) {
    return {
      status: error.status,
      body: errorBody(error.code, error.message, error.fields),
      headers: { ...error.headers },
    };
  }
  if (isFerryError(error)) {
    const status = httpStatusOf(error);
    if (status === 500) return internal();
    if (status === 503) {
      // The core's message names the server's Redis URL and its flags, which clients cannot use.
      const message = 'The queue (Redis) is unavailable: retry in a few seconds.';
      return { status, body: errorBody('UNAVAILABLE', message), headers: { 'Retry-After': '5' } };
    }
    return { status, body: errorBody(error.code, error.message, fieldsOf(error)), headers: {} };
  }

  const fastifyError = error as Partial<FastifyError> | undefined;
  const known = fastifyError?.code === undefined ? undefined : fastifyErrors[fastifyError.code];
  if (known !== undefined) {
    const status = new ProducerError(known.code, known.message).status;
    return { status, body: errorBody(known.code, known.message), headers: {} };
  }
  const statusCode = fastifyError?.statusCode;
  if (statusCode !== undefined && statusCode >= 400 && statusCode < 500) {
    // A client error that fastify found and that has no entry above, such as a malformed URL:
    // the response carries fastify's own message.
    return {
      status: statusCode,
      body: errorBody(
        'INVALID_REQUEST',
        `The request is invalid: ${fastifyError?.message ?? 'unknown problem'}.`,
      ),
      headers: {},
    };
  }
  return internal();
}

function internal(): { status: number; body: ErrorBody; headers: Record<string, string> } {
  return {
    status: 500,
    body: errorBody(
      'INTERNAL_ERROR',
      'The server failed to handle the request; the API log has the details.',
    ),
    headers: {},
  };
}

/** Fastify error handler of the whole server. */
export function handleError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { status, body, headers } = describeError(error);
  if (status === 503) {
    request.log.warn(
      { err: error, route: request.routeOptions.url, method: request.method },
      'Request failed: Redis unavailable',
    );
  } else if (status >= 500) {
    request.log.error(
      { err: error, route: request.routeOptions.url, method: request.method },
      'Request failed',
    );
  }
  return reply.status(status).headers(headers).send(body);
}

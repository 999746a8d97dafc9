/**
 * Bearer-token authentication of the /v1 routes. The hook runs before the body is read and
 * before the rate limit, which then counts requests per identity.
 */
import type { FastifyRequest } from 'fastify';

import { ProducerError } from '../common/errors.js';
import type { ProducerIdentity } from '../common/identity.js';
import { bearerToken, type TokenRegistry } from './tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Sender of the request, set once a token or a dashboard session was checked. */
    identity?: ProducerIdentity;
  }
}

const challenge = { 'WWW-Authenticate': 'Bearer realm="ferry"' };

/** Returns an onRequest hook that sets `request.identity` or rejects with UNAUTHORIZED. */
export function tokenAuthHook(tokens: TokenRegistry): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    const header = request.headers.authorization;
    if (header === undefined) {
      throw new ProducerError(
        'UNAUTHORIZED',
        'No API token: send the header "Authorization: Bearer <token>".',
        {
          fields: ['Authorization'],
          headers: challenge,
        },
      );
    }
    const identity = tokens.authenticate(bearerToken(header));
    if (identity === undefined) {
      throw new ProducerError(
        'UNAUTHORIZED',
        'The API token is not valid: send "Authorization: Bearer <token>" with a token from the API configuration.',
        { fields: ['Authorization'], headers: challenge },
      );
    }
    request.identity = identity;
  };
}

/** Returns the request's identity; throws UNAUTHORIZED if no hook set one (a routing bug). */
export function identityOf(request: FastifyRequest): ProducerIdentity {
  if (request.identity === undefined) {
    throw new ProducerError(
      'UNAUTHORIZED',
      'This route needs an API token: send "Authorization: Bearer <token>".',
    );
  }
  return request.identity;
}

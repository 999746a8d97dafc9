/**
 * Routes without a token: GET /healthz (for load balancers and container health checks),
 * GET /metrics (Prometheus) and GET /v1/openapi.json. None of them shows a job, a host or a
 * requester; the metrics carry only counts by state, route and kind.
 */
import type { FastifyInstance } from 'fastify';

import type { ApiContext } from '../context.js';
import { buildOpenApiDocument } from '../openapi.js';

/** How long /healthz waits for Redis to reply to PING, in milliseconds. */
const healthTimeoutMs = 1_000;

async function pingRedis(context: ApiContext): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${healthTimeoutMs} ms`), healthTimeoutMs);
  });
  try {
    return await Promise.race([
      context.queue.connection.ping().then(
        (answer) => (answer === 'PONG' ? 'ok' : `unexpected answer ${answer}`),
        (error: unknown) => `unreachable (${(error as Error).message})`,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export async function publicRoutes(app: FastifyInstance, options: { context: ApiContext }): Promise<void> {
  const { context } = options;
  const openApiDocument = buildOpenApiDocument(context.settings);

  app.get('/healthz', { config: { rateLimit: false } }, async (request, reply) => {
    const redis = await pingRedis(context);
    if (redis !== 'ok') request.log.warn({ redis }, 'Health check failed: Redis unavailable');
    return reply
      .code(redis === 'ok' ? 200 : 503)
      .send({ status: redis === 'ok' ? 'ok' : 'unavailable', redis });
  });

  app.get('/metrics', { config: { rateLimit: false } }, async (_request, reply) => {
    const text = await context.metrics.registry.metrics();
    return reply.type(context.metrics.registry.contentType).send(text);
  });

  app.get('/v1/openapi.json', async () => openApiDocument);
}

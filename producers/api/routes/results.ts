/**
 * The token's own durable results: GET /v1/results returns those not yet acknowledged, oldest
 * first, including results published while the client was away; POST /v1/results/ack marks
 * them read. They are the same per-requester results `ferry results` reads, so a token and a
 * CLI user with the same requester name share one list.
 */
import type { FastifyInstance } from 'fastify';

import { publicHostView } from '../../../src/config/inventory.js';
import { usableHosts } from '../../common/identity.js';
import { identityOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ackBodySchema, parseWith, resultsQuerySchema } from '../schemas.js';

export async function resultRoutes(app: FastifyInstance, options: { context: ApiContext }): Promise<void> {
  const { queue, inventory } = options.context;

  app.get('/v1/results', async (request) => {
    const identity = identityOf(request);
    const { count } = parseWith(resultsQuerySchema, request.query, 'query');
    // No blocking read: the result store has one connection for those, which long polls from
    // many clients would queue behind each other.
    const entries = await queue.results.readForRequester(identity.name, { count });
    return { results: entries.map((entry) => ({ entryId: entry.entryId, result: entry.result })) };
  });

  app.post('/v1/results/ack', async (request) => {
    const identity = identityOf(request);
    const { entryIds } = parseWith(ackBodySchema, request.body, 'body');
    return { acknowledged: await queue.results.ack(identity.name, entryIds) };
  });

  app.get('/v1/hosts', async (request) => {
    const identity = identityOf(request);
    return { hosts: usableHosts(identity, inventory).map((name) => publicHostView(inventory.host(name))) };
  });
}

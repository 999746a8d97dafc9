/** The /v1/migrations routes: queue, read, list, cancel and follow migrations. */
import type { FastifyInstance } from 'fastify';

import { isFerryError } from '../../../src/errors.js';
import { cancelMigration } from '../../../src/jobs/cancel.js';
import { getMigrationStatus, type MigrationState } from '../../../src/jobs/producer.js';
import { checkAllowedUrl } from '../../callbacks/allow-list.js';
import type { DeliveryTarget } from '../../callbacks/store.js';
import { checkIdempotencyKey, submitMigration, type SubmitOptions } from '../../common/submit.js';
import { identityOf } from '../auth.js';
import { eventsUrl, readVisibleStatus, statusUrl, type ApiContext } from '../context.js';
import { listMigrations } from '../listing.js';
import { jobParamsSchema, listQuerySchema, parseWith, splitMigrationBody } from '../schemas.js';

export async function migrationRoutes(app: FastifyInstance, options: { context: ApiContext }): Promise<void> {
  const { context } = options;
  const { queue, settings } = context;

  app.post('/v1/migrations', async (request, reply) => {
    const identity = identityOf(request);
    const { input, callbackUrl } = splitMigrationBody(request.body);

    const submitOptions: SubmitOptions = {};
    if (callbackUrl !== undefined) {
      const url = checkAllowedUrl(callbackUrl, settings.callbacks?.allow ?? [], 'callbackUrl');
      submitOptions.delivery = { kind: 'webhook', url: url.toString() } satisfies DeliveryTarget;
    }
    const keyHeader = request.headers['idempotency-key'];
    if (keyHeader !== undefined) submitOptions.idempotencyKey = checkIdempotencyKey(keyHeader);

    const { jobId, created } = await submitMigration(context.submit, identity, input, submitOptions);
    context.metrics.countSubmission('api', created);
    request.log.info(
      { jobId, requester: identity.name, created },
      created ? 'Migration queued' : 'Migration request repeated',
    );

    let state: MigrationState | undefined = 'queued';
    if (!created) {
      try {
        state = (await getMigrationStatus(queue, jobId)).state;
      } catch (error) {
        // The earlier job can have expired while its Idempotency-Key is still kept.
        if (!isFerryError(error, 'JOB_NOT_FOUND')) throw error;
        state = undefined;
      }
      if (submitOptions.idempotencyKey !== undefined) reply.header('Idempotent-Replayed', 'true');
    }

    const location = statusUrl(settings, jobId);
    return reply
      .code(202)
      .header('Location', location)
      .send({
        jobId,
        ...(state === undefined ? {} : { state }),
        statusUrl: location,
        eventsUrl: eventsUrl(settings, jobId),
        created,
      });
  });

  app.get('/v1/migrations', async (request) => {
    const identity = identityOf(request);
    const query = parseWith(listQuerySchema, request.query, 'query');
    const page = await listMigrations(queue, identity, query);
    return { ...page, jobs: page.jobs.map((job) => ({ ...job, statusUrl: statusUrl(settings, job.jobId) })) };
  });

  app.get('/v1/migrations/:id', async (request) => {
    const { id } = parseWith(jobParamsSchema, request.params, 'path');
    return readVisibleStatus(queue, identityOf(request), id);
  });

  app.delete('/v1/migrations/:id', async (request, reply) => {
    const identity = identityOf(request);
    const { id } = parseWith(jobParamsSchema, request.params, 'path');
    await readVisibleStatus(queue, identity, id);

    const { outcome, status } = await cancelMigration(queue, id, identity.name);
    request.log.info({ jobId: id, requester: identity.name, outcome }, 'Migration cancel requested');
    // 202 while the worker still has to stop the running job; 200 once nothing is left to do.
    return reply
      .code(outcome === 'cancelling' ? 202 : 200)
      .send({ jobId: id, outcome, ...(status === undefined ? {} : { status }) });
  });

  app.get('/v1/migrations/:id/events', async (request, reply) => {
    const { id } = parseWith(jobParamsSchema, request.params, 'path');
    const first = await readVisibleStatus(queue, identityOf(request), id);
    await context.events.stream(request, reply, first);
  });
}

/**
 * The OpenAPI 3.1 document of the API, generated from the zod schemas that validate requests
 * (schemas.ts) and describe responses (responses.ts). OpenAPI 3.1 uses JSON Schema 2020-12,
 * which is what zod's toJSONSchema writes, so the schemas are embedded as they come.
 */
import { z } from 'zod';

import { signatureHeader } from '../callbacks/signature.js';
import type { ApiSettings } from './config.js';
import {
  ackResponseSchema,
  acceptedResponseSchema,
  cancelResponseSchema,
  chatResponseSchema,
  errorResponseSchema,
  healthResponseSchema,
  hostsResponseSchema,
  listResponseSchema,
  resultSchema,
  resultsResponseSchema,
  statusResponseSchema,
} from './responses.js';
import {
  ackBodySchema,
  apiMigrationRequestSchema,
  chatBodySchema,
  jobIdSchema,
  listQuerySchema,
  resultsQuerySchema,
} from './schemas.js';

type JsonObject = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonObject;
  return rest;
}

function queryParameters(schema: z.ZodObject): JsonObject[] {
  const properties = (jsonSchema(schema, 'input').properties ?? {}) as Record<string, JsonObject>;
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...propertySchema } = property;
    return { name, in: 'query', required: false, description, schema: propertySchema };
  });
}

const json = (ref: string): JsonObject => ({
  'application/json': { schema: { $ref: `#/components/schemas/${ref}` } },
});
const response = (description: string, ref: string): JsonObject => ({ description, content: json(ref) });
const errorResponse = (description: string): JsonObject => response(description, 'Error');

const commonErrors = {
  '400': errorResponse('Invalid input; the body names the field and the problem.'),
  '401': errorResponse('Missing or unknown API token.'),
  '429': errorResponse('Rate limit of the token reached; see Retry-After.'),
  '503': errorResponse('Redis is unavailable; retry later.'),
};

const jobIdParameter = {
  name: 'id',
  in: 'path',
  required: true,
  description: jobIdSchema.description,
  schema: jsonSchema(jobIdSchema, 'input'),
};

/** Builds the document; `settings` supplies the server URL when one is configured. */
export function buildOpenApiDocument(settings: Pick<ApiSettings, 'publicUrl'>): JsonObject {
  const migrationRequest = jsonSchema(apiMigrationRequestSchema, 'input');
  // The "reason, ticket or both" rule is a refinement, which JSON Schema cannot carry by itself.
  migrationRequest.anyOf = [{ required: ['reason'] }, { required: ['ticket'] }];

  return {
    openapi: '3.1.0',
    info: {
      title: 'ferry API',
      version: '1',
      description:
        'Queue live VM migrations, follow them and read their results. Every /v1 route needs "Authorization: Bearer <token>"; the token is the requester of what it queues and may be limited to some hosts.',
    },
    ...(settings.publicUrl === undefined ? {} : { servers: [{ url: settings.publicUrl }] }),
    security: [{ bearerToken: [] }],
    components: {
      securitySchemes: { bearerToken: { type: 'http', scheme: 'bearer' } },
      schemas: {
        MigrationRequest: migrationRequest,
        MigrationAccepted: jsonSchema(acceptedResponseSchema, 'output'),
        MigrationStatus: jsonSchema(statusResponseSchema, 'output'),
        MigrationList: jsonSchema(listResponseSchema, 'output'),
        MigrationResult: jsonSchema(resultSchema, 'output'),
        CancelOutcome: jsonSchema(cancelResponseSchema, 'output'),
        Hosts: jsonSchema(hostsResponseSchema, 'output'),
        UnreadResults: jsonSchema(resultsResponseSchema, 'output'),
        AckRequest: jsonSchema(ackBodySchema, 'input'),
        Acknowledged: jsonSchema(ackResponseSchema, 'output'),
        ChatRequest: jsonSchema(chatBodySchema, 'input'),
        ChatReply: jsonSchema(chatResponseSchema, 'output'),
        Health: jsonSchema(healthResponseSchema, 'output'),
        Error: jsonSchema(errorResponseSchema, 'output'),
      },
    },
    paths: {
      '/v1/migrations': {
        post: {
          summary: 'Queue a migration',
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              description:
                'A repeat with the same key and body returns the first job instead of queueing another.',
              schema: { type: 'string', minLength: 1, maxLength: 255 },
            },
          ],
          requestBody: { required: true, content: json('MigrationRequest') },
          responses: {
            '202': response(
              'Queued, or the job of an earlier identical request (created: false).',
              'MigrationAccepted',
            ),
            ...commonErrors,
            '403': errorResponse('The token may not use the source or the target.'),
            '409': errorResponse('The same request is being queued right now; retry.'),
            '413': errorResponse('The body is too large.'),
            '415': errorResponse('The body is not JSON.'),
            '422': errorResponse('The Idempotency-Key was used with another request.'),
          },
          callbacks: {
            migrationFinished: {
              '{$request.body#/callbackUrl}': {
                post: {
                  summary: 'The result, once the job has ended',
                  description: `Retried with exponential backoff, up to the configured attempts, until a 2xx response. ${signatureHeader} is "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>" under the server's callback secret.`,
                  parameters: [
                    { name: signatureHeader, in: 'header', required: true, schema: { type: 'string' } },
                  ],
                  requestBody: {
                    content: {
                      'application/json': {
                        schema: {
                          type: 'object',
                          properties: {
                            event: { const: 'migration.finished' },
                            result: { $ref: '#/components/schemas/MigrationResult' },
                          },
                        },
                      },
                    },
                  },
                  responses: { '2XX': { description: 'Delivered; any other response is retried.' } },
                },
              },
            },
          },
        },
        get: {
          summary: 'List migrations',
          parameters: queryParameters(listQuerySchema),
          responses: { '200': response('One page of jobs.', 'MigrationList'), ...commonErrors },
        },
      },
      '/v1/migrations/{id}': {
        parameters: [jobIdParameter],
        get: {
          summary: 'Read the state, progress and result of a migration',
          responses: {
            '200': response('The status.', 'MigrationStatus'),
            ...commonErrors,
            '404': errorResponse('No such job for this token.'),
          },
        },
        delete: {
          summary: 'Cancel a migration',
          responses: {
            '200': response('Cancelled before it started, or already ended.', 'CancelOutcome'),
            '202': response('Running: its worker aborts it and publishes where the VM is.', 'CancelOutcome'),
            ...commonErrors,
            '404': errorResponse('No such job for this token.'),
          },
        },
      },
      '/v1/migrations/{id}/events': {
        parameters: [jobIdParameter],
        get: {
          summary: 'Follow a migration as server-sent events',
          description:
            'Events: state, phase, bytes, then result (the MigrationResult), after which the stream ends; error ends it too.',
          responses: {
            '200': {
              description: 'An event stream.',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
            ...commonErrors,
            '404': errorResponse('No such job for this token.'),
          },
        },
      },
      '/v1/results': {
        get: {
          summary: "Read the token's unacknowledged results, oldest first",
          parameters: queryParameters(resultsQuerySchema),
          responses: { '200': response('Results not yet acknowledged.', 'UnreadResults'), ...commonErrors },
        },
      },
      '/v1/results/ack': {
        post: {
          summary: 'Mark results read',
          requestBody: { required: true, content: json('AckRequest') },
          responses: { '200': response('How many were still unread.', 'Acknowledged'), ...commonErrors },
        },
      },
      '/v1/hosts': {
        get: {
          summary: 'List the inventory hosts this token may use, without credentials',
          responses: { '200': response('The hosts.', 'Hosts'), ...commonErrors },
        },
      },
      '/v1/chat': {
        post: {
          summary: 'Run a chat command (migrate, status, cancel, hosts, help) as this token',
          requestBody: { required: true, content: json('ChatRequest') },
          responses: { '200': response('The reply to show in the chat.', 'ChatReply'), ...commonErrors },
        },
      },
      '/v1/chat/slack': {
        post: {
          summary: 'Slack slash command endpoint',
          description:
            'Authenticated by the Slack signing secret (X-Slack-Signature, X-Slack-Request-Timestamp), not by a token.',
          security: [],
          requestBody: { content: { 'application/x-www-form-urlencoded': { schema: { type: 'object' } } } },
          responses: {
            '200': { description: 'The immediate reply, as Slack expects it.' },
            '401': errorResponse('Bad or stale signature.'),
          },
        },
      },
      '/healthz': {
        get: {
          summary: 'Health of the API and its Redis',
          security: [],
          responses: {
            '200': response('Healthy.', 'Health'),
            '503': response('Redis unavailable.', 'Health'),
          },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics',
          security: [],
          responses: {
            '200': {
              description: 'Prometheus text format.',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
          },
        },
      },
    },
  };
}

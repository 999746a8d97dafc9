/**
 * Schemas of what the API returns, for the OpenAPI document only: responses are built from
 * typed values, not validated. They follow MigrationResult, MigrationStatusReport and the
 * route handlers; the OpenAPI unit test checks them against real responses.
 */
import { z } from 'zod';

import { migrationPhases, migrationStatuses, tunnelModes } from '../../src/types.js';
import { producerErrorStatuses } from '../common/errors.js';
import { migrationStates } from './schemas.js';

export const errorResponseSchema = z
  .object({
    error: z.object({
      code: z
        .string()
        .describe(
          `One of ${Object.keys(producerErrorStatuses).join(', ')}, or a core code such as UNKNOWN_HOST.`,
        ),
      message: z.string().describe('What is wrong, with the bad value and the fix.'),
      fields: z
        .array(z.string())
        .optional()
        .describe('Body paths, parameters or headers the error is about.'),
    }),
  })
  .describe('Error');

export const acceptedResponseSchema = z
  .object({
    jobId: z.string(),
    state: z.enum(migrationStates),
    statusUrl: z.string(),
    eventsUrl: z.string(),
    created: z.boolean().describe('False when the request repeated an earlier one and this is its job.'),
  })
  .describe('MigrationAccepted');

const progressSchema = z.object({
  phase: z.enum(migrationPhases),
  bytes: z.number().int().optional(),
  totalBytes: z.number().int().optional(),
});

export const resultSchema = z
  .object({
    jobId: z.string(),
    status: z.enum(migrationStatuses),
    vm: z.string(),
    source: z.string(),
    target: z.string(),
    requester: z.string(),
    reason: z.string().optional(),
    ticket: z.string().optional(),
    tunnel: z.enum(tunnelModes),
    bytes: z.number().int().optional(),
    phaseMs: z.record(z.string(), z.number()),
    attempts: z.number().int(),
    bastion: z.string(),
    startedAt: z.string(),
    finishedAt: z.string(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
    observed: z
      .array(z.object({ host: z.string(), state: z.string(), detail: z.string().optional() }))
      .optional(),
  })
  .describe('MigrationResult');

export const statusResponseSchema = z
  .object({
    jobId: z.string(),
    state: z.enum(migrationStates),
    progress: progressSchema.optional(),
    result: resultSchema.optional(),
    attemptsMade: z.number().int(),
    failedReason: z.string().optional(),
    request: z
      .record(z.string(), z.unknown())
      .optional()
      .describe('The queued request, while the queue keeps the job.'),
  })
  .describe('MigrationStatus');

export const listResponseSchema = z
  .object({
    jobs: z.array(
      z.object({
        jobId: z.string(),
        state: z.enum(migrationStates),
        vm: z.string(),
        source: z.string(),
        target: z.string(),
        requester: z.string(),
        ticket: z.string().optional(),
        enqueuedAt: z.string().optional(),
        statusUrl: z.string(),
      }),
    ),
    nextCursor: z.string().optional().describe('Pass as cursor for the next page; absent on the last page.'),
  })
  .describe('MigrationList');

export const cancelResponseSchema = z
  .object({
    jobId: z.string(),
    outcome: z.enum(['cancelled', 'cancelling', 'already-ended']),
    status: z.enum(migrationStatuses).optional(),
  })
  .describe('CancelOutcome');

export const hostsResponseSchema = z
  .object({ hosts: z.array(z.object({ name: z.string(), address: z.string(), driver: z.string() })) })
  .describe('Hosts');

export const resultsResponseSchema = z
  .object({ results: z.array(z.object({ entryId: z.string(), result: resultSchema })) })
  .describe('UnreadResults');

export const ackResponseSchema = z.object({ acknowledged: z.number().int() }).describe('Acknowledged');

export const chatResponseSchema = z
  .object({ text: z.string(), jobId: z.string().optional() })
  .describe('ChatReply');

export const healthResponseSchema = z
  .object({ status: z.enum(['ok', 'unavailable']), redis: z.string() })
  .describe('Health');

/**
 * Schemas of what clients send to the API. They validate requests and are the source of the
 * OpenAPI document (openapi.ts), so the document cannot drift from what the server accepts.
 *
 * The migration body reuses the fields of `migrationRequestSchema`, without `requester` (the
 * token sets it) and with `callbackUrl`. Its fields are checked by `validateRequest`, whose
 * messages name each field, the bad value and the fix.
 */
import { z } from 'zod';

import { formatZodIssues } from '../../src/config/zod-errors.js';
import { quoteValue } from '../../src/jobs/quote.js';
import { migrationRequestSchema, requesterPattern } from '../../src/jobs/request.js';
import { migrationStatuses } from '../../src/types.js';
import { maxUrlLength } from '../callbacks/allow-list.js';
import { ProducerError } from '../common/errors.js';

const { requester: _requester, ...requestFields } = migrationRequestSchema.shape;

export const callbackUrlSchema = z
  .url({ protocol: /^https?$/ })
  .max(maxUrlLength)
  .describe(
    'URL that receives the result as a signed POST once the job ends; it must match the allow-list of the server.',
  );

/** Body of POST /v1/migrations. At least one of reason and ticket is required. */
export const apiMigrationRequestSchema = z
  .strictObject({ ...requestFields, callbackUrl: callbackUrlSchema.optional() })
  .describe('A migration request. The requester is the identity of the API token.');

const apiRequestFields: readonly string[] = Object.keys(apiMigrationRequestSchema.shape);

/** States a job can be in, as the API reports and filters them. */
export const migrationStates = ['queued', 'running', 'retrying', ...migrationStatuses] as const;
export type ListedState = (typeof migrationStates)[number];

export const jobIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9-]{1,64}$/)
  .describe('Job id, as POST /v1/migrations returned it.');

export const jobParamsSchema = z.strictObject({ id: jobIdSchema });

export const listQuerySchema = z.strictObject({
  state: z.enum(migrationStates).optional().describe('Only jobs in this state.'),
  requester: z.string().regex(requesterPattern).optional().describe('Only jobs of this requester.'),
  limit: z.coerce.number().int().min(1).max(100).default(20).describe('Jobs per page, 1 to 100.'),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,200}$/)
    .optional()
    .describe('The nextCursor of the previous page.'),
});

export const resultsQuerySchema = z.strictObject({
  count: z.coerce.number().int().min(1).max(100).default(20).describe('Results per read, 1 to 100.'),
});

export const ackBodySchema = z.strictObject({
  entryIds: z
    .array(z.string().regex(/^\d{1,20}-\d{1,20}$/))
    .min(1)
    .max(100)
    .describe('The entryId of each result read.'),
});

export const chatBodySchema = z.strictObject({
  text: z
    .string()
    .max(2_000)
    .describe('A chat command such as "migrate web01 from xen-a to xen-b because patching".'),
});

/**
 * Parses `value` with `schema`, or throws INVALID_REQUEST naming each bad field of `location`
 * (such as "query" or "body").
 */
export function parseWith<T extends z.ZodType>(schema: T, value: unknown, location: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues.map((issue) => issue.path.map(String).join('.'));
  throw new ProducerError(
    'INVALID_REQUEST',
    `Invalid ${location}: ${formatZodIssues(parsed.error.issues)}.`,
    {
      fields,
    },
  );
}

/**
 * Splits the body of POST /v1/migrations into the core request fields and the callback URL.
 * Throws INVALID_REQUEST when the body is not an object, sets `requester`, or has a field the
 * API does not know. The core fields are checked later, by `validateRequest`.
 */
export function splitMigrationBody(body: unknown): { input: Record<string, unknown>; callbackUrl?: unknown } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ProducerError(
      'INVALID_REQUEST',
      `The request body must be a JSON object (got ${quoteValue(body)}): send the fields vm, source, target and reason or ticket.`,
      { fields: [''] },
    );
  }
  const fields = Object.keys(body);
  if (fields.includes('requester')) {
    throw new ProducerError(
      'INVALID_REQUEST',
      'requester is set from the API token: remove it from the body.',
      { fields: ['requester'] },
    );
  }
  const unknown = fields.filter((field) => !apiRequestFields.includes(field));
  if (unknown.length > 0) {
    throw new ProducerError(
      'INVALID_REQUEST',
      `The request has unknown field${unknown.length === 1 ? '' : 's'} ${unknown.map((field) => quoteValue(field)).join(', ')}: remove ${unknown.length === 1 ? 'it' : 'them'} (allowed: ${apiRequestFields.join(', ')}).`,
      { fields: unknown },
    );
  }
  const { callbackUrl, ...input } = body as Record<string, unknown>;
  return callbackUrl === undefined ? { input } : { input, callbackUrl };
}

/**
 * The migration request that a producer sends, validated before anything reaches the queue.
 *
 * A request names the VM and the hosts only by name. It never carries an address, a command or
 * a credential: the worker looks those up in its own inventory, so a producer cannot steer a
 * worker to another machine or make it run anything.
 */
import { z } from 'zod';

import { namePattern, type Inventory } from '../config/inventory.js';
import { FerryError } from '../errors.js';
import { tunnelModes } from '../types.js';
import { quoteValue } from './quote.js';

/** Requester identities: a user name, a bot name or an e-mail-like id, usable in a Redis key. */
export const requesterPattern = /^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$/;

/** Maximum lengths of the free-text fields, in UTF-16 code units. */
export const reasonMaxLength = 500;
export const ticketMaxLength = 200;

/** Upper bounds of the per-phase timeouts a request may set, in milliseconds. */
export const timeoutLimitsMs = {
  connectMs: 5 * 60_000, // 5 min
  preflightMs: 30 * 60_000, // 30 min
  migrateMs: 48 * 60 * 60_000, // 48 h
  verifyMs: 30 * 60_000, // 30 min
} as const;

const timeoutLimitLabels: Record<keyof typeof timeoutLimitsMs, string> = {
  connectMs: '5 min',
  preflightMs: '30 min',
  migrateMs: '48 h',
  verifyMs: '30 min',
};

export const maxAttempts = 10;
export const defaultAttempts = 3;

// C0 and C1 control characters, and the bidirectional overrides that can make a terminal show
// text in another order than it is stored.
const forbiddenTextCharacters = /[\p{Cc}\u202A-\u202E\u2066-\u2069]/u;

function freeText(maxLength: number) {
  return z
    .string()
    .trim()
    .min(1)
    .max(maxLength)
    .refine(
      (text) => !forbiddenTextCharacters.test(text),
      'contains a control or bidirectional formatting character',
    );
}

function timeout(maxMs: number) {
  return z.number().int().min(1).max(maxMs);
}

const timeoutsSchema = z
  .strictObject({
    connectMs: timeout(timeoutLimitsMs.connectMs).optional(),
    preflightMs: timeout(timeoutLimitsMs.preflightMs).optional(),
    migrateMs: timeout(timeoutLimitsMs.migrateMs).optional(),
    verifyMs: timeout(timeoutLimitsMs.verifyMs).optional(),
  })
  .describe('Per-phase time limits in milliseconds; a phase left out keeps the worker default.');

const optionsSchema = z.strictObject({
  tunnel: z
    .enum(tunnelModes)
    .default('relay')
    .describe('relay: through the bastion; direct: an OpenSSH forward started on the source.'),
  attempts: z
    .number()
    .int()
    .min(1)
    .max(maxAttempts)
    .default(defaultAttempts)
    .describe('Attempts before the job fails for good.'),
  timeouts: timeoutsSchema.optional(),
});

const requestObject = z.strictObject({
  vm: z.string().regex(namePattern).describe('Name of the VM as the source hypervisor lists it.'),
  source: z.string().regex(namePattern).describe('Inventory host that runs the VM now.'),
  target: z.string().regex(namePattern).describe('Inventory host the VM moves to.'),
  requester: z
    .string()
    .regex(requesterPattern)
    .describe('Identity that asks for the migration and reads its result.'),
  reason: freeText(reasonMaxLength).optional().describe('Why the VM moves; reason, ticket or both.'),
  ticket: freeText(ticketMaxLength).optional().describe('Change ticket reference; reason, ticket or both.'),
  options: optionsSchema.prefault({}),
});

/**
 * Schema of a migration request as producers send it. It checks the form of every field; the
 * host names are checked against the inventory by `validateRequest`.
 */
export const migrationRequestSchema = requestObject.superRefine((request, context) => {
  if (request.reason === undefined && request.ticket === undefined) {
    context.addIssue({ code: 'custom', path: ['reason'], message: 'and ticket are both missing' });
  }
});

/** A validated request, defaults filled in. */
export type MigrationRequest = z.output<typeof migrationRequestSchema>;
/** A request as a producer writes it: `options` and its fields may be left out. */
export type MigrationRequestInput = z.input<typeof migrationRequestSchema>;

const timeoutHint = (field: keyof typeof timeoutLimitsMs): string =>
  `use a whole number of milliseconds from 1 to ${timeoutLimitsMs[field]} (${timeoutLimitLabels[field]})`;

/** Fix for a bad value, by field path. */
const fieldHints: Record<string, string> = {
  '': 'send an object with the fields vm, source, target, requester and reason or ticket',
  vm: 'use the VM\'s name as the hypervisor lists it (1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit)',
  source: 'use the inventory name of the host that runs the VM now',
  target: 'use the inventory name of the host the VM should move to',
  requester:
    'use 1 to 128 letters, digits, ".", "_", "@", ":" or "-", starting with a letter or digit (a user or bot name)',
  reason: `give a reason of 1 to ${reasonMaxLength} characters on one line, or a ticket, or both`,
  ticket: `give a ticket reference of 1 to ${ticketMaxLength} characters on one line, or a reason, or both`,
  options: 'send an object with the fields tunnel, attempts and timeouts, or leave it out',
  'options.tunnel': `use one of ${tunnelModes.map((mode) => `"${mode}"`).join(', ')}`,
  'options.attempts': `use a whole number from 1 to ${maxAttempts}`,
  'options.timeouts':
    'send an object with the fields connectMs, preflightMs, migrateMs and verifyMs, or leave it out',
  'options.timeouts.connectMs': timeoutHint('connectMs'),
  'options.timeouts.preflightMs': timeoutHint('preflightMs'),
  'options.timeouts.migrateMs': timeoutHint('migrateMs'),
  'options.timeouts.verifyMs': timeoutHint('verifyMs'),
};

/** Field names allowed in each object of a request, for the message about an unknown field. */
const allowedFields: Record<string, string[]> = {
  '': Object.keys(requestObject.shape),
  options: Object.keys(optionsSchema.shape),
  'options.timeouts': Object.keys(timeoutsSchema.shape),
};

/** Reads the value at `path` of the raw input, for showing it in an error. */
function valueAt(input: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let value = input;
  for (const key of path) {
    if (typeof value !== 'object' || value === null || typeof key === 'symbol') return undefined;
    value = (value as Record<string | number, unknown>)[key];
  }
  return value;
}

function describeProblem(issue: z.core.$ZodIssue, value: unknown): string {
  switch (issue.code) {
    case 'invalid_type':
      return value === undefined
        ? 'is missing'
        : `must be ${issue.expected === 'object' ? 'an' : 'a'} ${issue.expected}`;
    case 'invalid_format':
      return 'is invalid';
    case 'invalid_value':
      return 'is not one of the allowed values';
    case 'too_small':
      return issue.origin === 'string' ? 'is empty' : 'is too small';
    case 'too_big':
      return issue.origin === 'string' ? 'is too long' : 'is too large';
    default:
      return issue.message;
  }
}

/** Turns one zod issue into a sentence naming the field, the bad value and the fix. */
function describeIssue(issue: z.core.$ZodIssue, input: unknown): { fields: string[]; sentence: string } {
  const field = issue.path.map(String).join('.');
  const name = field === '' ? 'the request' : field;

  if (issue.code === 'unrecognized_keys') {
    const single = issue.keys.length === 1;
    const names = issue.keys.map((key) => quoteValue(key)).join(', ');
    const allowed = (allowedFields[field] ?? []).join(', ');
    return {
      fields: issue.keys.map((key) => (field === '' ? key : `${field}.${key}`)),
      sentence: `${name} has unknown field${single ? '' : 's'} ${names}: remove ${single ? 'it' : 'them'} (allowed: ${allowed})`,
    };
  }

  const value = valueAt(input, issue.path);
  const got = value === undefined ? '' : ` (got ${quoteValue(value)})`;
  const hint = fieldHints[field] ?? 'see the request schema';
  return { fields: [field], sentence: `${name} ${describeProblem(issue, value)}${got}: ${hint}` };
}

function invalidRequest(sentences: string[], fields: string[]): FerryError {
  return new FerryError('INVALID_REQUEST', `Invalid migration request: ${sentences.join('. ')}.`, {
    context: { field: fields[0], fields },
  });
}

/**
 * Validates a migration request against the schema and the inventory and returns it with
 * defaults filled in.
 *
 * Throws FerryError INVALID_REQUEST listing every bad field, or UNKNOWN_HOST when the form is
 * right but `source` or `target` is not in the inventory. Each message names the field, shows
 * the bad value (escaped and truncated) and gives the fix.
 */
export function validateRequest(input: unknown, inventory: Inventory): MigrationRequest {
  const parsed = migrationRequestSchema.safeParse(input);
  if (!parsed.success) {
    const described = parsed.error.issues.map((issue) => describeIssue(issue, input));
    throw invalidRequest(
      described.map((entry) => entry.sentence),
      described.flatMap((entry) => entry.fields),
    );
  }
  const request = parsed.data;

  const unknown = (['source', 'target'] as const).filter((field) => !inventory.has(request[field]));
  if (unknown.length > 0) {
    const known = inventory.names().join(', ');
    const sentences = unknown.map(
      (field) => `${field} ${quoteValue(request[field])} is not in the inventory`,
    );
    throw new FerryError(
      'UNKNOWN_HOST',
      `Invalid migration request: ${sentences.join(', and ')}. Use one of the known hosts: ${known}.`,
      { context: { field: unknown[0], fields: unknown, host: request[unknown[0] ?? 'source'] } },
    );
  }

  if (request.source === request.target) {
    throw invalidRequest(
      [`target is the same host as source (got ${quoteValue(request.target)}): name another host as target`],
      ['target'],
    );
  }

  return request;
}

/**
 * The API's configuration file (YAML or JSON), validated with zod and compiled once into
 * ApiSettings: secrets read from the environment or files, tokens as SHA-256 digests, URL
 * allow-lists parsed, durations in milliseconds. Secret values never appear in an error message.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';

import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

import { namePattern, type Inventory } from '../../src/config/inventory.js';
import { formatZodIssues } from '../../src/config/zod-errors.js';
import { FerryError } from '../../src/errors.js';
import { requesterPattern } from '../../src/jobs/request.js';
import { parseUrlPrefix, type UrlPrefix } from '../callbacks/allow-list.js';
import type { DispatcherTiming } from '../callbacks/dispatcher.js';
import type { RateLimit } from '../common/identity.js';
import { buildTokenEntries, type TokenEntry } from './tokens.js';

type Environment = Record<string, string | undefined>;

const absolutePath = z.string().refine((path) => isAbsolute(path), 'must be an absolute path');

/** Source of a secret: an environment variable, or the first line of a file. */
const secretSourceSchema = z.union([
  z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a variable name') }),
  z.strictObject({ file: absolutePath }),
]);
type SecretSource = z.infer<typeof secretSourceSchema>;

const rateLimitSchema = z.strictObject({
  /** Requests allowed per window. */
  max: z.number().int().min(1).max(1_000_000),
  /** Length of the window in milliseconds. */
  windowMs: z
    .number()
    .int()
    .min(1_000)
    .max(24 * 60 * 60_000),
});

const hostNames = z.array(z.string().regex(namePattern, 'must be an inventory host name')).min(1);

const urlPrefixList = z.array(z.string().max(2048)).transform((entries, context) =>
  entries.flatMap((entry, index) => {
    const parsed = parseUrlPrefix(entry);
    if (typeof parsed === 'string') {
      context.addIssue({ code: 'custom', path: [index], message: parsed });
      return [];
    }
    return [parsed];
  }),
);

const tokenSchema = z.strictObject({
  /** Identity of the token: the requester of what it queues. */
  name: z.string().regex(requesterPattern, 'must be 1 to 128 letters, digits, ".", "_", "@", ":" or "-"'),
  /** SHA-256 of the token, in hex, as `ferry api token` prints it. */
  sha256: z
    .string({ error: 'must be 64 hex digits in quotes (YAML reads some unquoted digests as numbers)' })
    .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits'),
  /** Hosts the token may name as source or target. Default: every inventory host. */
  hosts: hostNames.optional(),
  /** Default: the top-level rateLimit. */
  rateLimit: rateLimitSchema.optional(),
  /** May open the dashboard, which shows every job. Default false. */
  dashboard: z.boolean().default(false),
});

const configSchema = z.strictObject({
  listen: z
    .strictObject({
      host: z
        .string()
        .regex(/^[A-Za-z0-9.:_-]{1,255}$/, 'must be a host name or IP address')
        .default('127.0.0.1'),
      /** 0 picks a free port. */
      port: z.number().int().min(0).max(65535).default(8080),
    })
    .prefault({}),
  /** Base URL clients reach the API at, for the status URLs in responses. Default: relative URLs. */
  publicUrl: z.url({ protocol: /^https?$/ }).optional(),
  /** Trust X-Forwarded-* headers from a reverse proxy in front of the API. Default false. */
  trustProxy: z.boolean().default(false),
  /** Largest request body, in bytes. Default 16 KiB. */
  bodyLimitBytes: z.number().int().min(1_024).max(1_048_576).default(16_384),
  /** Default rate limit of each token. Default 120 requests per minute. */
  rateLimit: rateLimitSchema.default({ max: 120, windowMs: 60_000 }),
  /** Rate limit per client address of the routes without a token (login, Slack). Default 60 per minute. */
  anonymousRateLimit: rateLimitSchema.default({ max: 60, windowMs: 60_000 }),
  tokens: z.array(tokenSchema).min(1, 'list at least one token'),
  callbacks: z
    .strictObject({
      /** URL prefixes a request's callbackUrl must start with. */
      allow: urlPrefixList,
      /** Key of the HMAC-SHA256 signature of each delivery. */
      secret: secretSourceSchema,
      maxAttempts: z.number().int().min(1).max(50).default(8),
      timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
      retryBaseMs: z.number().int().min(10).max(3_600_000).default(1_000),
      retryMaxMs: z
        .number()
        .int()
        .min(10)
        .max(24 * 3_600_000)
        .default(300_000),
    })
    .optional(),
  slack: z
    .strictObject({
      /** The Slack app's signing secret. */
      signingSecret: secretSourceSchema,
      /** URL prefixes a command's response_url must start with. Default https://hooks.slack.com/. */
      responseUrlAllow: urlPrefixList.prefault(['https://hooks.slack.com/']),
      /** Slack user ids allowed to run commands. Default: every user who can run the command. */
      users: z
        .array(z.string().regex(/^[A-Z0-9]{2,32}$/, 'must be a Slack user id such as U012AB3CD'))
        .optional(),
      /** Hosts Slack users may name. Default: every inventory host. */
      hosts: hostNames.optional(),
      /** Rate limit per client address, which for Slack is Slack's own servers. Default 600 per minute. */
      rateLimit: rateLimitSchema.default({ max: 600, windowMs: 60_000 }),
    })
    .optional(),
  dashboard: z
    .strictObject({
      /** Key that signs session cookies. Default: random at each start, which ends sessions on restart. */
      sessionSecret: secretSourceSchema.optional(),
      sessionMs: z
        .number()
        .int()
        .min(60_000)
        .max(7 * 24 * 3_600_000)
        .default(12 * 3_600_000),
    })
    .prefault({}),
});

export type ApiConfigInput = z.input<typeof configSchema>;

export interface SlackSettings {
  signingSecret: string;
  responseUrlAllow: UrlPrefix[];
  users?: ReadonlySet<string>;
  hosts?: ReadonlySet<string>;
  rateLimit: RateLimit;
}

/** The compiled configuration the server runs with. */
export interface ApiSettings {
  listen: { host: string; port: number };
  /** Without a trailing slash; undefined means status URLs are relative. */
  publicUrl?: string;
  trustProxy: boolean;
  bodyLimitBytes: number;
  anonymousRateLimit: RateLimit;
  tokens: TokenEntry[];
  callbacks?: {
    allow: UrlPrefix[];
    secret: string;
    timing: Pick<DispatcherTiming, 'maxAttempts' | 'timeoutMs' | 'retryBaseMs' | 'retryMaxMs'>;
  };
  slack?: SlackSettings;
  dashboard: { sessionSecret?: string; sessionMs: number };
}

function invalidConfig(source: string, detail: string): FerryError {
  return new FerryError('INVALID_CONFIG', `Invalid ${source}: ${detail}`, {
    context: { field: 'apiConfig' },
  });
}

/** Reads a secret. Errors name the variable or file and the config field, never a value. */
function readSecret(secretSource: SecretSource, field: string, env: Environment, source: string): string {
  if ('env' in secretSource) {
    const value = env[secretSource.env];
    if (value === undefined || value === '') {
      throw invalidConfig(source, `${field}: environment variable ${secretSource.env} is not set or empty.`);
    }
    return value;
  }
  let text: string;
  try {
    text = readFileSync(secretSource.file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'read error';
    throw invalidConfig(source, `${field}: cannot read ${secretSource.file} (${code}).`);
  }
  const value = text.split(/\r?\n/)[0] ?? '';
  if (value === '') throw invalidConfig(source, `${field}: the first line of ${secretSource.file} is empty.`);
  return value;
}

function hostSet(
  hosts: string[] | undefined,
  inventory: Inventory,
  field: string,
  source: string,
): Set<string> | undefined {
  if (hosts === undefined) return undefined;
  const unknown = hosts.filter((host) => !inventory.has(host));
  if (unknown.length > 0) {
    throw invalidConfig(
      source,
      `${field}: ${unknown.join(', ')} not in the inventory (known: ${inventory.names().join(', ')}).`,
    );
  }
  return new Set(hosts);
}

/** Validates configuration data already parsed from YAML or JSON and compiles it. */
export function compileApiConfig(
  data: unknown,
  inventory: Inventory,
  env: Environment = process.env,
  source = 'API configuration',
): ApiSettings {
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) throw invalidConfig(source, formatZodIssues(parsed.error.issues));
  const config = parsed.data;

  const tokens = buildTokenEntries(
    config.tokens.map((token, index) => ({
      name: token.name,
      sha256: token.sha256.toLowerCase(),
      dashboard: token.dashboard,
      rateLimit: token.rateLimit ?? config.rateLimit,
      hosts: hostSet(token.hosts, inventory, `tokens.${index}.hosts`, source),
    })),
    (detail) => invalidConfig(source, detail),
  );

  const settings: ApiSettings = {
    listen: config.listen,
    trustProxy: config.trustProxy,
    bodyLimitBytes: config.bodyLimitBytes,
    anonymousRateLimit: config.anonymousRateLimit,
    tokens,
    dashboard: { sessionMs: config.dashboard.sessionMs },
  };
  if (config.publicUrl !== undefined) settings.publicUrl = config.publicUrl.replace(/\/+$/, '');
  if (config.dashboard.sessionSecret !== undefined) {
    settings.dashboard.sessionSecret = readSecret(
      config.dashboard.sessionSecret,
      'dashboard.sessionSecret',
      env,
      source,
    );
  }
  if (config.callbacks !== undefined) {
    const { allow, secret, ...timing } = config.callbacks;
    settings.callbacks = { allow, secret: readSecret(secret, 'callbacks.secret', env, source), timing };
  }
  if (config.slack !== undefined) {
    const slack = config.slack;
    settings.slack = {
      signingSecret: readSecret(slack.signingSecret, 'slack.signingSecret', env, source),
      responseUrlAllow: slack.responseUrlAllow,
      rateLimit: slack.rateLimit,
    };
    if (slack.users !== undefined) settings.slack.users = new Set(slack.users);
    const hosts = hostSet(slack.hosts, inventory, 'slack.hosts', source);
    if (hosts !== undefined) settings.slack.hosts = hosts;
  }
  return settings;
}

/** Reads, validates and compiles an API configuration file. Throws INVALID_CONFIG. */
export function loadApiConfig(
  path: string,
  inventory: Inventory,
  env: Environment = process.env,
): ApiSettings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new FerryError(
      'INVALID_CONFIG',
      `Cannot read the API configuration ${path}: ${(error as Error).message}. Pass --config PATH or set FERRY_API_CONFIG.`,
      { cause: error, context: { field: 'apiConfig' } },
    );
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw invalidConfig(`API configuration ${path}`, `not valid YAML or JSON: ${(error as Error).message}`);
  }
  return compileApiConfig(data, inventory, env, `API configuration ${path}`);
}

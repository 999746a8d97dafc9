/**
 * Starts what the API tests need: the lab (Redis and simulated hosts), the migration queue under
 * a unique prefix, optionally an in-process worker, and the API server on a free loopback port
 * with freshly generated tokens.
 */
import { loadInventory, type Inventory } from '../../../src/config/inventory.js';
import { openMigrationQueue, type MigrationQueue } from '../../../src/jobs/queue.js';
import { Lab, type LabOptions } from '../../../src/lab/lab.js';
import { createLogger } from '../../../src/log.js';
import { startMigrationWorker, type MigrationWorkerHandle } from '../../../src/migration/worker.js';
import type { DispatcherTiming } from '../../../producers/callbacks/dispatcher.js';
import { compileApiConfig, type ApiConfigInput } from '../../../producers/api/config.js';
import { createApiServer, type ApiServer } from '../../../producers/api/server.js';
import { generateToken, hashToken } from '../../../producers/api/tokens.js';

export interface TokenOptions {
  name: string;
  hosts?: string[];
  dashboard?: boolean;
  rateLimit?: { max: number; windowMs: number };
}

export interface HarnessOptions {
  lab?: LabOptions;
  /** Start an in-process worker. Default true. */
  worker?: boolean;
  /** Jobs the worker runs at once. Default 2. */
  concurrency?: number;
  tokens: TokenOptions[];
  /** More configuration (callbacks, slack, ...) merged over the generated one. */
  config?: Partial<ApiConfigInput>;
  /** Environment the configuration's secrets are read from. */
  env?: Record<string, string>;
  callbackTiming?: Partial<DispatcherTiming>;
}

export interface Harness {
  lab: Lab;
  inventory: Inventory;
  queue: MigrationQueue;
  worker?: MigrationWorkerHandle;
  server: ApiServer;
  baseUrl: string;
  /** Token by name. */
  tokens: Record<string, string>;
  stop(): Promise<void>;
}

const quietLogger = createLogger({ level: 'silent' });

/** A parsed JSON response body; the tests check it field by field. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export async function startHarness(options: HarnessOptions): Promise<Harness> {
  const lab = await Lab.start(options.lab);
  const cleanups: Array<() => Promise<void>> = [() => lab.stop()];
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };

  try {
    const inventory = loadInventory(lab.inventoryPath);
    const redisUrl = lab.redis?.url as string;
    const prefix = `api-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const queue = await openMigrationQueue({ redisUrl, prefix });
    cleanups.push(() => queue.close());

    let worker: MigrationWorkerHandle | undefined;
    if (options.worker !== false) {
      worker = await startMigrationWorker({
        redisUrl,
        prefix,
        inventory,
        bastion: 'api-test-bastion',
        concurrency: options.concurrency ?? 2,
        retryBackoff: { baseDelayMs: 50, maxDelayMs: 200 },
        logger: quietLogger,
      });
      const started = worker;
      cleanups.push(() => started.close());
    }

    const tokens: Record<string, string> = {};
    const tokenConfig = options.tokens.map((token) => {
      const value = generateToken();
      tokens[token.name] = value;
      return {
        name: token.name,
        sha256: hashToken(value),
        ...(token.hosts === undefined ? {} : { hosts: token.hosts }),
        ...(token.rateLimit === undefined ? {} : { rateLimit: token.rateLimit }),
        dashboard: token.dashboard ?? false,
      };
    });
    const settings = compileApiConfig(
      { listen: { host: '127.0.0.1', port: 0 }, tokens: tokenConfig, ...options.config },
      inventory,
      options.env ?? {},
    );
    const server = await createApiServer({
      settings,
      inventory,
      queue,
      logger: quietLogger,
      pollMs: 50,
      ...(options.callbackTiming === undefined ? {} : { callbackTiming: options.callbackTiming }),
    });
    cleanups.push(() => server.close());
    const baseUrl = await server.listen();

    return {
      lab,
      inventory,
      queue,
      ...(worker === undefined ? {} : { worker }),
      server,
      baseUrl,
      tokens,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Sends a request to the API and returns the status, headers and parsed JSON body. */
export async function call(
  harness: Harness,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; body: Json }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] ??= 'application/json';
  const response = await fetch(`${harness.baseUrl}${path}`, {
    method,
    headers,
    ...(options.body === undefined
      ? {}
      : { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) }),
  });
  const text = await response.text();
  let body: unknown = text;
  if ((response.headers.get('content-type') ?? '').includes('application/json')) body = JSON.parse(text);
  return { status: response.status, headers: response.headers, body };
}

/** Polls GET /v1/migrations/{id} until `done` accepts the status or the timeout passes. */
export async function waitForStatus(
  harness: Harness,
  token: string,
  jobId: string,
  done: (status: Json) => boolean,
  timeoutMs = 30_000,
): Promise<Json> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await call(harness, 'GET', `/v1/migrations/${jobId}`, { token });
    if (done(body) || Date.now() > deadline) return body;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface ServerSentEvent {
  id?: string;
  event: string;
  data: Json;
}

/** Reads a server-sent event stream until it ends or `timeoutMs` passes. */
export async function readEvents(url: string, token: string, timeoutMs = 30_000): Promise<ServerSentEvent[]> {
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (response.status !== 200 || response.body === null) {
    throw new Error(`event stream answered ${response.status}`);
  }
  const text = await response.text();
  return text
    .split('\n\n')
    .filter((block) => block.includes('event: '))
    .map((block) => {
      const fields = Object.fromEntries(
        block
          .split('\n')
          .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]),
      );
      return { id: fields.id, event: fields.event as string, data: JSON.parse(fields.data as string) };
    });
}

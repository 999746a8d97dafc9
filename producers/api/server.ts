/**
 * The HTTP API server: fastify with token authentication, per-identity rate limits, the
 * /v1 routes, the Slack endpoint, the dashboard, metrics, and the callback dispatcher that sends
 * results to requesters.
 *
 * Route scopes, each with its own authentication:
 * - public: /healthz, /metrics, /v1/openapi.json (no token);
 * - token: every other /v1 route (Authorization: Bearer);
 * - Slack: /v1/chat/slack (Slack's request signature);
 * - dashboard: /ui (session cookie from /ui/login, or a bearer token).
 *
 * The server only queues, reads and cancels jobs; it never runs a migration, and nothing under
 * producers/ imports the migration, SSH or driver code.
 */
import rateLimit from '@fastify/rate-limit';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

import type { Inventory } from '../../src/config/inventory.js';
import type { MigrationQueue } from '../../src/jobs/queue.js';
import { createLogger } from '../../src/log.js';
import { CallbackDispatcher, type DispatcherTiming } from '../callbacks/dispatcher.js';
import { webhookEncoder } from '../callbacks/signature.js';
import { CallbackStore } from '../callbacks/store.js';
import { chatRoutes } from '../chat/http.js';
import { resultReply } from '../chat/replies.js';
import { slackRoutes } from '../chat/slack.js';
import { SlackProgress } from '../chat/slack-progress.js';
import { DuplicateGuard } from '../common/duplicates.js';
import { ProducerError } from '../common/errors.js';
import { tokenAuthHook } from './auth.js';
import type { ApiSettings } from './config.js';
import type { ApiContext } from './context.js';
import { dashboardPath, dashboardRoutes } from './dashboard.js';
import { EventStreams, type EventStreamTiming } from './events.js';
import { errorBody, handleError } from './http-errors.js';
import { ApiMetrics } from './metrics.js';
import { migrationRoutes } from './routes/migrations.js';
import { publicRoutes } from './routes/public.js';
import { resultRoutes } from './routes/results.js';
import { TokenRegistry } from './tokens.js';

export interface ApiServerOptions {
  settings: ApiSettings;
  inventory: Inventory;
  /** The queue to use; the server does not close it. */
  queue: MigrationQueue;
  logger?: Logger;
  /** Milliseconds between two status reads of event streams and Slack followers. Default 500. */
  pollMs?: number;
  /** Timing of event streams, for tests. */
  eventTiming?: Partial<EventStreamTiming>;
  /** Timing of the callback dispatcher; attempts and delays default to the configuration. */
  callbackTiming?: Partial<DispatcherTiming>;
}

export interface ApiServer {
  readonly app: FastifyInstance;
  /** Starts listening and delivering callbacks; returns the base URL, such as http://127.0.0.1:8080. */
  listen(): Promise<string>;
  /** Ends event streams and Slack followers, stops the dispatcher and closes the HTTP server. */
  close(): Promise<void>;
}

/** Builds the server (not yet listening). */
export async function createApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { settings, inventory, queue } = options;
  const logger = options.logger ?? createLogger({ name: 'ferry-api' });
  const pollMs = options.pollMs ?? 500;

  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: settings.bodyLimitBytes,
    trustProxy: settings.trustProxy,
    // One debug line per request comes from the onResponse hook below instead.
    logController: new LogController({ disableRequestLogging: true }),
    // Errors the router finds before any route runs (a malformed URL, a path parameter over
    // its maximum length) get the same body as the others.
    frameworkErrors: (error, request, reply) => {
      handleError(error, request, reply);
    },
  }) as unknown as FastifyInstance;
  // Only JSON bodies are accepted on the /v1 routes; forms are parsed where they are expected.
  app.removeContentTypeParser('text/plain');

  const metrics = new ApiMetrics(queue, logger);
  const callbacks = new CallbackStore(queue.connection, {
    prefix: queue.prefix,
    retentionMs: queue.retentionMs,
  });
  const context: ApiContext = {
    settings,
    inventory,
    queue,
    tokens: new TokenRegistry(settings.tokens),
    submit: {
      queue,
      inventory,
      guard: new DuplicateGuard(queue.connection, { prefix: queue.prefix, retentionMs: queue.retentionMs }),
      callbacks,
    },
    metrics,
    events: new EventStreams(queue, { pollMs, ...options.eventTiming }, logger),
    logger,
    pollMs,
  };
  const slackProgress = new SlackProgress(queue, logger, pollMs);
  const dispatcher = createDispatcher(context, callbacks, options.callbackTiming);

  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(
        errorBody(
          'NOT_FOUND',
          `No route ${request.method} ${request.url.split('?')[0] ?? ''}: see /v1/openapi.json.`,
        ),
      ),
  );
  // JSON is UTF-8 (RFC 8259); a body declared in another charset is refused rather than misread.
  app.addHook('preParsing', async (request) => {
    const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(request.headers['content-type'] ?? '')?.[1];
    if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
      throw new ProducerError(
        'UNSUPPORTED_MEDIA_TYPE',
        `The charset ${charset.slice(0, 20)} is not supported: send UTF-8.`,
      );
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.observeRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    request.log.debug(
      { method: request.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'Request answered',
    );
  });

  // NOTE: the counters live in this process's memory, so each API process applies the limits on
  // its own. Behind a balancer with several API processes, a token gets that many times the limit.
  await app.register(rateLimit, {
    global: true,
    keyGenerator: (request) =>
      request.identity === undefined ? `ip:${request.ip}` : `token:${request.identity.name}`,
    max: (request) => request.identity?.rateLimit.max ?? settings.anonymousRateLimit.max,
    timeWindow: (request) => request.identity?.rateLimit.windowMs ?? settings.anonymousRateLimit.windowMs,
    // The dashboard page polls its API every few seconds; operators logged in to it are not limited.
    allowList: (request) => request.identity?.dashboard === true && request.url.startsWith(dashboardPath),
    errorResponseBuilder: (_request, limit) =>
      new ProducerError(
        'RATE_LIMITED',
        `Rate limit of ${limit.max} requests reached: retry in ${limit.after}.`,
      ),
  });

  await app.register(publicRoutes, { context });
  await app.register(async (scope) => {
    scope.addHook('onRequest', tokenAuthHook(context.tokens));
    await scope.register(migrationRoutes, { context });
    await scope.register(resultRoutes, { context });
    await scope.register(chatRoutes, { context });
  });
  await app.register(slackRoutes, { context, progress: slackProgress });
  await app.register(dashboardRoutes, { context });

  // Open event streams would keep the HTTP server from closing, so they end first.
  app.addHook('preClose', async () => context.events.closeAll());
  app.addHook('onClose', async () => {
    await dispatcher?.stop();
    await slackProgress.close();
  });
  await app.ready();

  return {
    app,
    listen: async () => {
      const address = await app.listen({ host: settings.listen.host, port: settings.listen.port });
      dispatcher?.start();
      logger.info(
        { address, tokens: settings.tokens.length, slack: settings.slack !== undefined },
        'API started',
      );
      return address;
    },
    close: async () => {
      await app.close();
      logger.info('API stopped');
    },
  };
}

/** Creates the dispatcher when something can owe a delivery: callbacks or Slack commands. */
function createDispatcher(
  context: ApiContext,
  store: CallbackStore,
  timing: Partial<DispatcherTiming> | undefined,
): CallbackDispatcher | undefined {
  const { settings, queue, logger, metrics } = context;
  if (settings.callbacks === undefined && settings.slack === undefined) return undefined;
  return new CallbackDispatcher({
    store,
    queue,
    logger,
    timing: { ...settings.callbacks?.timing, ...timing },
    encoders: {
      ...(settings.callbacks === undefined ? {} : { webhook: webhookEncoder(settings.callbacks.secret) }),
      slack: (_record, result) => ({
        body: JSON.stringify({
          response_type: 'in_channel',
          replace_original: false,
          text: resultReply(result),
        }),
        headers: {},
      }),
    },
    onDelivery: (kind, outcome) => metrics.countDelivery(kind, outcome),
  });
}

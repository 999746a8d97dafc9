/**
 * Prometheus metrics of the API process, on a registry of its own (so that two servers in one
 * process, as in tests, do not share counters). Labels hold route patterns, states and kinds,
 * never job ids, VM names or requesters, to keep the number of series bounded.
 */
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import type { MigrationQueue } from '../../src/jobs/queue.js';
import type { DeliveryOutcome } from '../callbacks/dispatcher.js';
import type { DeliveryKind } from '../callbacks/store.js';

/** BullMQ job types reported by ferry_queue_jobs. */
const queueTypes = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;

export class ApiMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'method' | 'route' | 'status'>;
  readonly #duration: Histogram<'method' | 'route'>;
  readonly #submissions: Counter<'channel' | 'outcome'>;
  readonly #deliveries: Counter<'kind' | 'outcome'>;

  constructor(queue: MigrationQueue, logger: Logger) {
    collectDefaultMetrics({ register: this.registry, prefix: 'ferry_api_' });

    this.#requests = new Counter({
      name: 'ferry_api_http_requests_total',
      help: 'HTTP requests handled, by method, route pattern and status code.',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.#duration = new Histogram({
      name: 'ferry_api_http_request_duration_seconds',
      help: 'Time to respond to an HTTP request, in seconds (event streams count until their headers).',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
    this.#submissions = new Counter({
      name: 'ferry_api_migrations_submitted_total',
      help: 'Migration requests accepted, by channel (api, chat, slack) and outcome (created, existing).',
      labelNames: ['channel', 'outcome'],
      registers: [this.registry],
    });
    this.#deliveries = new Counter({
      name: 'ferry_api_callback_deliveries_total',
      help: 'Result delivery attempts that finished, by kind (webhook, slack) and outcome.',
      labelNames: ['kind', 'outcome'],
      registers: [this.registry],
    });
    new Gauge({
      name: 'ferry_queue_jobs',
      help: 'Jobs in the migration queue by BullMQ type, read from Redis at each scrape.',
      labelNames: ['type'],
      registers: [this.registry],
      async collect() {
        try {
          const counts = await queue.queue.getJobCounts(...queueTypes);
          for (const type of queueTypes) this.set({ type }, counts[type] ?? 0);
        } catch (error) {
          // A scrape during a Redis outage keeps the last values rather than failing whole.
          logger.warn({ err: error }, 'Queue metrics not read');
        }
      },
    });
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.#requests.inc({ method, route, status: String(status) });
    this.#duration.observe({ method, route }, seconds);
  }

  countSubmission(channel: 'api' | 'chat' | 'slack', created: boolean): void {
    this.#submissions.inc({ channel, outcome: created ? 'created' : 'existing' });
  }

  countDelivery(kind: DeliveryKind, outcome: DeliveryOutcome): void {
    this.#deliveries.inc({ kind, outcome });
  }
}

/**
 * Sends finished results to the URLs requesters gave: the signed webhook of an API request and
 * the response URL of a Slack command.
 *
 * It runs inside the API process and reads only the durable results (ResultStore). Every
 * `pollMs` it claims the deliveries that are due and sends those whose job has a published
 * result. It looks again later at those whose job is still running. Because the list of deliveries is in
 * Redis, a restarted API, or another API process on the same Redis, carries on where this one
 * stopped; a delivery interrupted mid-request is sent again, so receivers should treat the
 * `Ferry-Delivery` id as idempotent.
 */
import type { Logger } from 'pino';

import { coerceError } from '../../src/errors.js';
import type { MigrationQueue } from '../../src/jobs/queue.js';
import type { MigrationResult } from '../../src/types.js';
import type { CallbackStore, DeliveryKind, DeliveryRecord } from './store.js';

/** The request a delivery sends: a body and its headers. */
export interface DeliveryRequest {
  body: string;
  headers: Record<string, string>;
}

/** Builds the request of one delivery kind from the record and the result. */
export type DeliveryEncoder = (record: DeliveryRecord, result: MigrationResult) => DeliveryRequest;

export interface DispatcherTiming {
  /** Milliseconds between two looks for due deliveries. Default 1000. */
  pollMs: number;
  /** Milliseconds before a running job's delivery is looked at again. Default 2000. */
  resultPollMs: number;
  /** Time allowed for one HTTP request, in milliseconds. Default 10 s. */
  timeoutMs: number;
  /** Attempts before a delivery is given up. Default 8. */
  maxAttempts: number;
  /** Delay after the first failed attempt, in milliseconds, doubling each time. Default 1 s. */
  retryBaseMs: number;
  /** Maximum delay between two attempts, in milliseconds. Default 5 min. */
  retryMaxMs: number;
}

export const defaultDispatcherTiming: DispatcherTiming = {
  pollMs: 1_000,
  resultPollMs: 2_000,
  timeoutMs: 10_000,
  maxAttempts: 8,
  retryBaseMs: 1_000,
  retryMaxMs: 5 * 60_000,
};

export type DeliveryOutcome = 'delivered' | 'retrying' | 'abandoned' | 'expired';

export interface CallbackDispatcherOptions {
  store: CallbackStore;
  queue: MigrationQueue;
  encoders: Partial<Record<DeliveryKind, DeliveryEncoder>>;
  timing?: Partial<DispatcherTiming>;
  logger: Logger;
  /** Called after each finished delivery attempt, for metrics. */
  onDelivery?: (kind: DeliveryKind, outcome: DeliveryOutcome) => void;
}

/** Deliveries claimed per look. */
const claimBatch = 20;

/** Returns the delay before attempt `attempts + 1`: exponential, capped, with half of it random. */
export function retryDelayMs(
  attempts: number,
  timing: Pick<DispatcherTiming, 'retryBaseMs' | 'retryMaxMs'>,
): number {
  const exponential = Math.min(timing.retryMaxMs, timing.retryBaseMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(exponential / 2 + Math.random() * (exponential / 2));
}

export class CallbackDispatcher {
  readonly #options: CallbackDispatcherOptions;
  readonly #timing: DispatcherTiming;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = true;

  constructor(options: CallbackDispatcherOptions) {
    this.#options = options;
    this.#timing = { ...defaultDispatcherTiming, ...options.timing };
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule(0);
  }

  /** Stops looking for deliveries and waits for the ones in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#tick().finally(() => {
        this.#running = undefined;
        this.#schedule(this.#timing.pollMs);
      });
    }, delayMs);
  }

  async #tick(): Promise<void> {
    let members: string[];
    try {
      // The lease covers the request timeout, so that no other process claims it meanwhile.
      members = await this.#options.store.claimDue(claimBatch, this.#timing.timeoutMs + 10_000);
    } catch (error) {
      this.#options.logger.warn({ err: error }, 'Callback claim failed; retrying at the next poll');
      return;
    }
    await Promise.all(members.map((member) => this.#process(member)));
  }

  async #process(member: string): Promise<void> {
    const { store, queue, logger } = this.#options;
    try {
      const record = await store.get(member);
      if (record === undefined) {
        await store.complete(member);
        return;
      }
      const result = await queue.results.get(record.jobId);
      if (result !== undefined) {
        await this.#deliver(member, record, result);
        return;
      }
      if ((await queue.queue.getJob(record.jobId)) === undefined) {
        // Neither a result nor a job: both expired, so there is nothing left to send.
        await store.complete(member);
        logger.warn({ jobId: record.jobId, kind: record.kind }, 'Callback dropped: its job no longer exists');
        this.#options.onDelivery?.(record.kind, 'expired');
        return;
      }
      await store.reschedule(member, record, Date.now() + this.#timing.resultPollMs);
    } catch (error) {
      logger.warn({ err: error, member }, 'Callback processing failed; it is retried when its lease ends');
    }
  }

  async #deliver(member: string, record: DeliveryRecord, result: MigrationResult): Promise<void> {
    const { store, logger } = this.#options;
    const encoder = this.#options.encoders[record.kind];
    const attempt = record.attempts + 1;
    const target = new URL(record.url);
    // Only the host is logged: callback paths and queries can carry the receiver's secrets.
    const context = { jobId: record.jobId, kind: record.kind, host: target.host, attempt };

    let failure: string | undefined;
    if (encoder === undefined) {
      failure = `no sender for deliveries of kind ${record.kind} is configured`;
    } else {
      failure = await this.#send(target, encoder(record, result), record, attempt);
    }

    if (failure === undefined) {
      await store.complete(member);
      logger.info(context, 'Callback delivered');
      this.#options.onDelivery?.(record.kind, 'delivered');
      return;
    }

    const updated: DeliveryRecord = { ...record, attempts: attempt, lastError: failure };
    if (attempt >= this.#timing.maxAttempts) {
      await store.abandon(member, updated);
      logger.error({ ...context, reason: failure }, 'Callback abandoned after its last attempt');
      this.#options.onDelivery?.(record.kind, 'abandoned');
      return;
    }
    const delayMs = retryDelayMs(attempt, this.#timing);
    await store.reschedule(member, updated, Date.now() + delayMs);
    logger.warn({ ...context, reason: failure, delayMs }, 'Callback attempt failed; it will be retried');
    this.#options.onDelivery?.(record.kind, 'retrying');
  }

  /** Sends one request. Returns undefined on a 2xx response, else the reason it failed. */
  async #send(
    target: URL,
    request: DeliveryRequest,
    record: DeliveryRecord,
    attempt: number,
  ): Promise<string | undefined> {
    try {
      const response = await fetch(target, {
        method: 'POST',
        body: request.body,
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'ferry-callbacks',
          'Ferry-Delivery': `${record.jobId}:${record.kind}`,
          'Ferry-Attempt': String(attempt),
          ...request.headers,
        },
        // A redirect could lead outside the allow-list, so it counts as a failure.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#timing.timeoutMs),
      });
      await response.body?.cancel();
      return response.ok ? undefined : `HTTP status ${response.status}`;
    } catch (error) {
      return coerceError(error).message;
    }
  }
}

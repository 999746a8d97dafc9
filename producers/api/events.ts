/**
 * Server-sent events of one job (GET /v1/migrations/{id}/events).
 *
 * The stream polls the job's status, as `waitForResult` does, rather than following BullMQ's
 * event stream, which Redis trims: a client that connects late or reconnects still gets the
 * current state first and the result last. Events, each with an increasing `id`:
 * - `state`: `{jobId, state, attemptsMade}` when the state or the attempts change;
 * - `phase`: `{phase}` when the worker reports a new phase;
 * - `bytes`: `{bytes, totalBytes?}` when the tunnel has carried more bytes;
 * - `result`: the MigrationResult (or `{jobId, status, failedReason}` for a job that failed
 *   without publishing one), after which the server ends the stream;
 * - `error`: `{code, message}` when the job can no longer be read, after which the stream ends.
 * A comment line is sent when nothing else was for `heartbeatMs`, so that proxies keep the
 * connection open.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

import { isFerryError } from '../../src/errors.js';
import { getMigrationStatus, isFinalState, type MigrationStatusReport } from '../../src/jobs/producer.js';
import type { MigrationQueue } from '../../src/jobs/queue.js';

export interface EventStreamTiming {
  /** Milliseconds between two status reads. Default 500. */
  pollMs: number;
  /** Milliseconds of silence before a keep-alive comment. Default 15 s. */
  heartbeatMs: number;
  /** How long Redis may stay unreachable before the stream ends with an error, in ms. Default 30 s. */
  redisOutageMs: number;
}

export const defaultEventStreamTiming: EventStreamTiming = {
  pollMs: 500,
  heartbeatMs: 15_000,
  redisOutageMs: 30_000,
};

interface Seen {
  state?: string;
  attemptsMade?: number;
  phase?: string;
  bytes?: number;
}

export class EventStreams {
  readonly #queue: MigrationQueue;
  readonly #timing: EventStreamTiming;
  readonly #logger: Logger;
  readonly #open = new Set<AbortController>();

  constructor(queue: MigrationQueue, timing: Partial<EventStreamTiming>, logger: Logger) {
    this.#queue = queue;
    this.#timing = { ...defaultEventStreamTiming, ...timing };
    this.#logger = logger;
  }

  /** Number of streams open now. */
  get openCount(): number {
    return this.#open.size;
  }

  /** Ends every open stream, as the server does before it closes. */
  closeAll(): void {
    for (const controller of this.#open) controller.abort();
  }

  /**
   * Takes over the response and streams the job's events until its result is sent, the client
   * disconnects or closeAll() is called. `first` is the status the route already read.
   */
  async stream(request: FastifyRequest, reply: FastifyReply, first: MigrationStatusReport): Promise<void> {
    const controller = new AbortController();
    this.#open.add(controller);
    reply.hijack();
    const raw = reply.raw;
    raw.on('close', () => controller.abort());
    raw.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      // Tells nginx not to buffer the stream.
      'X-Accel-Buffering': 'no',
    });

    let eventId = 0;
    let lastWriteAt = Date.now();
    const send = (event: string, data: unknown): void => {
      eventId += 1;
      raw.write(`id: ${eventId}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      lastWriteAt = Date.now();
    };
    raw.write('retry: 2000\n\n');

    try {
      await this.#follow(first, controller.signal, send, () => {
        if (Date.now() - lastWriteAt >= this.#timing.heartbeatMs) {
          raw.write(': keep-alive\n\n');
          lastWriteAt = Date.now();
        }
      });
    } catch (error) {
      this.#logger.warn({ err: error, jobId: first.jobId, requestId: request.id }, 'Event stream failed');
      if (!raw.writableEnded) {
        send('error', { code: 'INTERNAL_ERROR', message: 'The event stream failed; reconnect.' });
      }
    } finally {
      this.#open.delete(controller);
      if (!raw.writableEnded) raw.end();
    }
  }

  async #follow(
    first: MigrationStatusReport,
    signal: AbortSignal,
    send: (event: string, data: unknown) => void,
    keepAlive: () => void,
  ): Promise<void> {
    const seen: Seen = {};
    let report = first;
    let outageSince: number | undefined;

    while (!signal.aborted) {
      sendChanges(report, seen, send);
      if (isFinalState(report.state)) {
        send(
          'result',
          report.result ?? { jobId: report.jobId, status: report.state, failedReason: report.failedReason },
        );
        return;
      }

      await sleep(this.#timing.pollMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;
      keepAlive();

      try {
        report = await getMigrationStatus(this.#queue, report.jobId);
        outageSince = undefined;
      } catch (error) {
        if (isFerryError(error, 'REDIS_UNAVAILABLE')) {
          outageSince ??= Date.now();
          if (Date.now() - outageSince < this.#timing.redisOutageMs) continue;
        }
        const code = isFerryError(error) ? error.code : 'INTERNAL_ERROR';
        send('error', { code, message: isFerryError(error) ? error.message : 'The job could not be read.' });
        return;
      }
    }
  }
}

function sendChanges(
  report: MigrationStatusReport,
  seen: Seen,
  send: (event: string, data: unknown) => void,
): void {
  if (report.state !== seen.state || report.attemptsMade !== seen.attemptsMade) {
    seen.state = report.state;
    seen.attemptsMade = report.attemptsMade;
    send('state', { jobId: report.jobId, state: report.state, attemptsMade: report.attemptsMade });
  }
  const progress = report.progress;
  if (progress === undefined) return;
  if (progress.phase !== seen.phase) {
    seen.phase = progress.phase;
    send('phase', { phase: progress.phase });
  }
  if (progress.bytes !== undefined && progress.bytes !== seen.bytes) {
    seen.bytes = progress.bytes;
    send(
      'bytes',
      progress.totalBytes === undefined
        ? { bytes: progress.bytes }
        : { bytes: progress.bytes, totalBytes: progress.totalBytes },
    );
  }
}

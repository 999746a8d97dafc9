/**
 * Posts to the response URL of a Slack command: late replies, and the progress of a queued
 * migration (when it starts running and when it is retried). The final result is not posted
 * here but by the durable callback dispatcher, so that it arrives even if this process stops.
 *
 * Slack accepts at most five messages per response URL, within 30 minutes of the command
 * (Slack's slash command documentation). One is kept for the result, so a follower posts at most
 * `maxProgressPosts` and stops following after 30 minutes. Followers live in this process only.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import type { Logger } from 'pino';

import { coerceError, isFerryError } from '../../src/errors.js';
import { getMigrationStatus, isFinalState } from '../../src/jobs/producer.js';
import type { MigrationQueue } from '../../src/jobs/queue.js';
import { progressReply } from './replies.js';

/** Progress messages per command; Slack's limit of five leaves room for a late reply and the result. */
const maxProgressPosts = 3;
/** How long a response URL stays usable, in milliseconds (30 min). */
const responseUrlLifetimeMs = 30 * 60_000;
/** Time allowed for one post, in milliseconds. */
const postTimeoutMs = 10_000;

export interface SlackMessage {
  response_type: 'ephemeral' | 'in_channel';
  text: string;
  replace_original?: boolean;
}

/** Posts a message to a Slack response URL; returns false (and logs) when it fails. */
export async function postToResponseUrl(
  url: string,
  message: SlackMessage,
  logger: Logger,
): Promise<boolean> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ replace_original: false, ...message }),
      redirect: 'manual',
      signal: AbortSignal.timeout(postTimeoutMs),
    });
    await response.body?.cancel();
    if (response.ok) return true;
    logger.warn(
      { status: response.status, host: new URL(url).host },
      'Slack response URL rejected a message',
    );
  } catch (error) {
    logger.warn({ err: coerceError(error), host: new URL(url).host }, 'Slack response URL post failed');
  }
  return false;
}

export class SlackProgress {
  readonly #queue: MigrationQueue;
  readonly #logger: Logger;
  readonly #pollMs: number;
  readonly #followers = new Set<AbortController>();
  readonly #done = new Set<Promise<void>>();

  constructor(queue: MigrationQueue, logger: Logger, pollMs: number) {
    this.#queue = queue;
    this.#logger = logger;
    this.#pollMs = pollMs;
  }

  /** Starts following a job in the background. */
  follow(jobId: string, responseUrl: string): void {
    const controller = new AbortController();
    this.#followers.add(controller);
    const done = this.#run(jobId, responseUrl, controller.signal)
      .catch((error: unknown) => this.#logger.warn({ err: error, jobId }, 'Slack progress follower failed'))
      .finally(() => {
        this.#followers.delete(controller);
        this.#done.delete(done);
      });
    this.#done.add(done);
  }

  /** Posts a message in the background (a late reply). */
  post(responseUrl: string, message: SlackMessage): void {
    const done = postToResponseUrl(responseUrl, message, this.#logger).then(() => {
      this.#done.delete(done);
    });
    this.#done.add(done);
  }

  /** Stops every follower and waits for posts in flight. */
  async close(): Promise<void> {
    for (const controller of this.#followers) controller.abort();
    await Promise.all([...this.#done]);
  }

  async #run(jobId: string, responseUrl: string, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + responseUrlLifetimeMs;
    let posts = 0;
    let lastAnnounced = '';

    while (!signal.aborted && Date.now() < deadline && posts < maxProgressPosts) {
      await sleep(this.#pollMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;

      let report;
      try {
        report = await getMigrationStatus(this.#queue, jobId);
      } catch (error) {
        if (isFerryError(error, 'REDIS_UNAVAILABLE')) continue;
        throw error;
      }
      if (isFinalState(report.state)) return;

      // Announce the start of the run and each retry, not every phase: the URL's budget is small.
      const milestone =
        report.state === 'running'
          ? `running:${report.attemptsMade}`
          : report.state === 'retrying'
            ? `retrying:${report.attemptsMade}`
            : '';
      if (milestone === '' || milestone === lastAnnounced) continue;
      lastAnnounced = milestone;
      posts += 1;
      await postToResponseUrl(
        responseUrl,
        { response_type: 'in_channel', text: progressReply(report) },
        this.#logger,
      );
    }
  }
}

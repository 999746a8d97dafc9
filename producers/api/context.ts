/** State shared by every route of the API server: settings, queue, stores and helpers. */
import type { Logger } from 'pino';

import type { Inventory } from '../../src/config/inventory.js';
import { isFerryError } from '../../src/errors.js';
import { getMigrationStatus, type MigrationStatusReport } from '../../src/jobs/producer.js';
import type { MigrationQueue } from '../../src/jobs/queue.js';
import { quoteValue } from '../../src/jobs/quote.js';
import { ProducerError } from '../common/errors.js';
import { mayAccessJob, type ProducerIdentity } from '../common/identity.js';
import type { SubmitDependencies } from '../common/submit.js';
import type { ApiSettings } from './config.js';
import type { EventStreams } from './events.js';
import type { ApiMetrics } from './metrics.js';
import type { TokenRegistry } from './tokens.js';

export interface ApiContext {
  settings: ApiSettings;
  inventory: Inventory;
  queue: MigrationQueue;
  tokens: TokenRegistry;
  submit: SubmitDependencies;
  metrics: ApiMetrics;
  events: EventStreams;
  logger: Logger;
  /** Milliseconds between two status reads of a chat progress follower. */
  pollMs: number;
}

/** Returns the URL of a job's status: absolute with a configured publicUrl, else relative. */
export function statusUrl(settings: ApiSettings, jobId: string): string {
  return `${settings.publicUrl ?? ''}/v1/migrations/${encodeURIComponent(jobId)}`;
}

export function eventsUrl(settings: ApiSettings, jobId: string): string {
  return `${statusUrl(settings, jobId)}/events`;
}

function jobNotFound(jobId: string): ProducerError {
  return new ProducerError(
    'NOT_FOUND',
    `No migration job ${quoteValue(jobId)} that this token may see: check the id. Finished jobs are kept only for the result retention period.`,
    { fields: ['id'] },
  );
}

/**
 * Reads a job's status for an identity. Throws NOT_FOUND both for an unknown job and for one
 * whose hosts the identity may not use, so that a token cannot probe for other jobs.
 */
export async function readVisibleStatus(
  queue: MigrationQueue,
  identity: ProducerIdentity,
  jobId: string,
): Promise<MigrationStatusReport> {
  let report: MigrationStatusReport;
  try {
    report = await getMigrationStatus(queue, jobId);
  } catch (error) {
    if (isFerryError(error, 'JOB_NOT_FOUND')) throw jobNotFound(jobId);
    throw error;
  }
  if (!mayAccessJob(identity, report.request ?? report.result)) throw jobNotFound(jobId);
  return report;
}

/**
 * Paged listing of the jobs BullMQ still keeps, by the API's states.
 *
 * BullMQ lists jobs per type (waiting, active, completed, ...), and the API's states do not map
 * one to one onto those types. A delayed job is `queued` or `retrying` by its attempts, and a
 * failed job is `failed`, `cancelled` or `needs-attention` by its published result. So a page is
 * built by walking the types that can contain the requested state, in a fixed order, and keeping
 * the jobs that match. The cursor is the position of that walk, which stays valid as jobs arrive
 * (new jobs may appear on later pages or not at all, never twice on one page).
 *
 * A job cancelled before it started is removed from the queue, so only GET /v1/migrations/{id}
 * shows it (from its result).
 */
import type { JobType } from 'bullmq';

import type { MigrationJob, MigrationQueue } from '../../src/jobs/queue.js';
import { migrationStatuses, type MigrationStatus } from '../../src/types.js';
import { ProducerError } from '../common/errors.js';
import { mayAccessJob, type ProducerIdentity } from '../common/identity.js';
import type { ListedState } from './schemas.js';

/** BullMQ types walked for each state, in order. */
const typesByState: Record<ListedState | 'any', JobType[]> = {
  queued: ['waiting', 'prioritized', 'waiting-children', 'delayed'],
  retrying: ['delayed', 'waiting', 'prioritized'],
  running: ['active'],
  completed: ['completed'],
  failed: ['failed', 'completed'],
  cancelled: ['failed', 'completed'],
  'needs-attention': ['failed', 'completed'],
  any: ['active', 'waiting', 'prioritized', 'waiting-children', 'delayed', 'completed', 'failed'],
};

/** Jobs read from Redis per step of the walk. */
const chunkSize = 50;
/** Jobs looked at for one page at most; a sparse match returns a short page and a cursor. */
const maxScannedPerPage = 1_000;

export interface ListedJob {
  jobId: string;
  state: ListedState;
  vm: string;
  source: string;
  target: string;
  requester: string;
  ticket?: string;
  enqueuedAt?: string;
}

export interface ListPage {
  jobs: ListedJob[];
  nextCursor?: string;
}

export interface ListFilter {
  state?: ListedState;
  requester?: string;
  limit: number;
  cursor?: string;
}

interface Position {
  typeIndex: number;
  offset: number;
}

function encodeCursor(position: Position): string {
  return Buffer.from(`${position.typeIndex}.${position.offset}`).toString('base64url');
}

function decodeCursor(cursor: string | undefined, typeCount: number): Position {
  if (cursor === undefined) return { typeIndex: 0, offset: 0 };
  const match = /^(\d{1,2})\.(\d{1,9})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  const typeIndex = Number(match?.[1] ?? Number.NaN);
  const offset = Number(match?.[2] ?? Number.NaN);
  if (!Number.isInteger(typeIndex) || typeIndex >= typeCount || !Number.isInteger(offset)) {
    throw new ProducerError(
      'INVALID_REQUEST',
      'cursor is invalid: pass the nextCursor of the previous page with the same state, or leave it out.',
      { fields: ['cursor'] },
    );
  }
  return { typeIndex, offset };
}

async function stateOf(queue: MigrationQueue, job: MigrationJob, type: JobType): Promise<ListedState> {
  switch (type) {
    case 'active':
      return 'running';
    case 'completed':
    case 'failed': {
      const result = await queue.results.get(job.id ?? '');
      if (result !== undefined) return result.status;
      if (type === 'failed') return 'failed';
      const returned = (job.returnvalue as { status?: unknown } | null)?.status;
      return migrationStatuses.includes(returned as MigrationStatus)
        ? (returned as MigrationStatus)
        : 'completed';
    }
    default:
      return job.attemptsMade > 0 ? 'retrying' : 'queued';
  }
}

/** Returns one page of the jobs the identity may see, newest first within each BullMQ type. */
export async function listMigrations(
  queue: MigrationQueue,
  identity: ProducerIdentity,
  filter: ListFilter,
): Promise<ListPage> {
  const types = typesByState[filter.state ?? 'any'];
  let { typeIndex, offset } = decodeCursor(filter.cursor, types.length);
  const jobs: ListedJob[] = [];
  let scanned = 0;

  while (typeIndex < types.length && jobs.length < filter.limit && scanned < maxScannedPerPage) {
    const type = types[typeIndex] as JobType;
    const chunk = (await queue.queue.getJobs([type], offset, offset + chunkSize - 1)) as MigrationJob[];
    let consumed = 0;
    for (const job of chunk) {
      consumed += 1;
      scanned += 1;
      const listed = await toListed(queue, job, type);
      if (listed !== undefined && matches(listed, identity, filter)) jobs.push(listed);
      if (jobs.length >= filter.limit) break;
    }
    offset += consumed;
    if (chunk.length < chunkSize && consumed === chunk.length) {
      typeIndex += 1;
      offset = 0;
    }
  }

  const done = typeIndex >= types.length;
  return done ? { jobs } : { jobs, nextCursor: encodeCursor({ typeIndex, offset }) };
}

async function toListed(
  queue: MigrationQueue,
  job: MigrationJob,
  type: JobType,
): Promise<ListedJob | undefined> {
  // getJobs can return an empty slot for a job removed while the page was read.
  if (job === undefined || job === null || job.id === undefined) return undefined;
  const data = job.data;
  const listed: ListedJob = {
    jobId: job.id,
    state: await stateOf(queue, job, type),
    vm: data.vm,
    source: data.source,
    target: data.target,
    requester: data.requester,
  };
  if (data.ticket !== undefined) listed.ticket = data.ticket;
  if (data.enqueuedAt !== undefined) listed.enqueuedAt = data.enqueuedAt;
  return listed;
}

function matches(job: ListedJob, identity: ProducerIdentity, filter: ListFilter): boolean {
  if (filter.state !== undefined && job.state !== filter.state) return false;
  if (filter.requester !== undefined && job.requester !== filter.requester) return false;
  return mayAccessJob(identity, job);
}

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { Worker } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { startRedis, type LabRedis } from '../../../src/lab/redis.js';
import {
  createRedisConnection,
  openMigrationQueue,
  queueName,
  type MigrationJobData,
  type MigrationQueue,
} from '../../../src/jobs/queue.js';
import { ResultStore } from '../../../src/jobs/results.js';
import type { MigrationResult, MigrationStatus } from '../../../src/types.js';

const repository = resolve(import.meta.dirname, '../../..');
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface RunOutput {
  code: number;
  stdout: string;
  stderr: string;
}

let redis: LabRedis;
let folder: string;
let inventoryPath: string;
let prefix: string;
const cleanups: Array<() => Promise<void>> = [];

/** Returns the child's exit code, or -1 when a signal or the timeout ended it. */
function exitCodeOf(error: { code?: unknown } | null): number {
  if (error === null) return 0;
  if (typeof error.code === 'number') return error.code;
  return -1;
}

/** Runs `node bin/ferry.mjs ARGS` against the test's Redis, inventory and prefix. */
async function ferry(args: string[], env: Record<string, string> = {}): Promise<RunOutput> {
  return new Promise((resolveRun) => {
    execFile(
      process.execPath,
      ['bin/ferry.mjs', ...args],
      {
        cwd: repository,
        timeout: 60_000,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: folder,
          FERRY_REDIS_URL: redis.url,
          FERRY_INVENTORY: inventoryPath,
          FERRY_PREFIX: prefix,
          FERRY_REQUESTER: 'cli-tester',
          ...env,
        },
      },
      (error, stdout, stderr) => {
        resolveRun({ code: exitCodeOf(error), stdout, stderr });
      },
    );
  });
}

async function openQueue(): Promise<MigrationQueue> {
  const queue = await openMigrationQueue({ redisUrl: redis.url, prefix });
  cleanups.push(() => queue.close());
  return queue;
}

/** Starts a stand-in for the migration worker that ends every job with `status`. */
function startFakeWorker(status: MigrationStatus): void {
  const resultsConnection = createRedisConnection(redis.url, 'worker');
  const workerConnection = createRedisConnection(redis.url, 'worker');
  const results = new ResultStore(resultsConnection, { prefix });
  const worker = new Worker<MigrationJobData, MigrationResult>(
    queueName,
    async (job) => {
      await job.updateProgress({
        phase: 'migrate',
        bytes: 512 * 1024 * 1024,
        totalBytes: 1024 * 1024 * 1024,
      });
      await new Promise((done) => setTimeout(done, 500));
      const now = new Date().toISOString();
      const result: MigrationResult = {
        jobId: job.id ?? 'missing',
        status,
        vm: job.data.vm,
        source: job.data.source,
        target: job.data.target,
        requester: job.data.requester,
        tunnel: job.data.options.tunnel,
        phaseMs: {},
        attempts: job.attemptsMade + 1,
        bastion: 'test-bastion',
        startedAt: now,
        finishedAt: now,
      };
      await results.publish(result);
      return result;
    },
    { connection: workerConnection, prefix },
  );
  worker.on('error', () => {});
  cleanups.push(async () => {
    await worker.close();
    workerConnection.disconnect();
    resultsConnection.disconnect();
  });
}

beforeAll(async () => {
  redis = await startRedis();
  folder = mkdtempSync(join(tmpdir(), 'ferry-cli-'));
  inventoryPath = join(folder, 'inventory.yaml');
  const host = (address: string): string =>
    `{ address: ${address}, port: 22, user: ferrylab, identityFile: /tmp/x/id, hostKey: 'SHA256:${'A'.repeat(43)}', relocationPort: 8002 }`;
  writeFileSync(inventoryPath, `hosts:\n  xen-a: ${host('127.0.0.2')}\n  xen-b: ${host('127.0.0.3')}\n`);
});

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

afterAll(async () => {
  await redis?.stop();
  if (folder !== undefined) rmSync(folder, { recursive: true, force: true });
});

describe('ferry CLI', () => {
  it('lists the commands in --help', async () => {
    prefix = `t-${randomUUID()}`;
    const { code, stdout } = await ferry(['--help']);
    expect(code).toBe(0);
    for (const command of ['migrate', 'status', 'results', 'worker']) expect(stdout).toContain(command);
    expect(stdout).toContain('Exit codes');
  });

  it('queues a migration and prints its id', async () => {
    prefix = `t-${randomUUID()}`;
    const { code, stdout, stderr } = await ferry([
      'migrate',
      'web01',
      '--from',
      'xen-a',
      '--to',
      'xen-b',
      '--reason',
      'patch',
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const jobId = stdout.trim();
    expect(jobId).toMatch(uuidPattern);

    const queue = await openQueue();
    const job = await queue.queue.getJob(jobId);
    expect(job?.data).toMatchObject({
      vm: 'web01',
      source: 'xen-a',
      target: 'xen-b',
      requester: 'cli-tester',
    });
    expect(await job?.getState()).toBe('waiting');

    const status = await ferry(['status', jobId]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`job ${jobId}: queued`);

    const json = await ferry(['status', jobId, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ jobId, state: 'queued', attemptsMade: 0 });
  });

  it('rejects a bad VM name with exit code 2', async () => {
    prefix = `t-${randomUUID()}`;
    const { code, stdout, stderr } = await ferry([
      'migrate',
      'web01;reboot',
      '--from',
      'xen-a',
      '--to',
      'xen-b',
      '--ticket',
      'CHG-1',
    ]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^ferry: Invalid migration request: vm is invalid/);
    expect(stderr.trim().split('\n')).toHaveLength(1);

    const queue = await openQueue();
    expect(await queue.queue.getJobCountByTypes('waiting', 'delayed', 'active', 'prioritized')).toBe(0);
  });

  it('rejects usage errors with exit code 2', async () => {
    prefix = `t-${randomUUID()}`;
    const missingTarget = await ferry(['migrate', 'web01', '--from', 'xen-a', '--reason', 'x']);
    expect(missingTarget.code).toBe(2);
    expect(missingTarget.stderr).toContain("ferry: required option '--to <host>' not specified");

    const badAttempts = await ferry([
      'migrate',
      'web01',
      '--from',
      'xen-a',
      '--to',
      'xen-b',
      '--reason',
      'x',
      '--attempts',
      '0',
    ]);
    expect(badAttempts.code).toBe(2);
    expect(badAttempts.stderr).toContain('--attempts');

    const unknownHost = await ferry([
      'migrate',
      'web01',
      '--from',
      'xen-a',
      '--to',
      'xen-q',
      '--reason',
      'x',
    ]);
    expect(unknownHost.code).toBe(2);
    expect(unknownHost.stderr).toContain('target "xen-q" is not in the inventory');
  });

  it('reports an unknown job id with exit code 2', async () => {
    prefix = `t-${randomUUID()}`;
    const { code, stderr } = await ferry(['status', randomUUID()]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^ferry: No migration job/);
  });

  it('waits for a completed migration and exits 0', async () => {
    prefix = `t-${randomUUID()}`;
    startFakeWorker('completed');
    const { code, stdout, stderr } = await ferry([
      'migrate',
      'web01',
      '--from',
      'xen-a',
      '--to',
      'xen-b',
      '--reason',
      'x',
      '--wait',
    ]);
    expect(stdout.trim()).toBe('completed');
    expect(stderr).toContain('phase migrate, 512.0 MiB of 1.0 GiB moved');
    expect(code).toBe(0);
  });

  it('exits 3 when the migration needs attention', async () => {
    prefix = `t-${randomUUID()}`;
    startFakeWorker('needs-attention');
    const { code, stdout } = await ferry([
      'migrate',
      'web01',
      '--from',
      'xen-a',
      '--to',
      'xen-b',
      '--reason',
      'x',
      '--wait',
      '--json',
    ]);
    expect(JSON.parse(stdout)).toMatchObject({
      state: 'needs-attention',
      result: { status: 'needs-attention' },
    });
    expect(code).toBe(3);
  });

  it('prints unread results once', async () => {
    prefix = `t-${randomUUID()}`;
    const queue = await openQueue();
    const now = new Date().toISOString();
    const result: MigrationResult = {
      jobId: randomUUID(),
      status: 'failed',
      vm: 'web01',
      source: 'xen-a',
      target: 'xen-b',
      requester: 'cli-tester',
      tunnel: 'relay',
      phaseMs: {},
      attempts: 3,
      bastion: 'test-bastion',
      startedAt: now,
      finishedAt: now,
      error: { code: 'MIGRATE_FAILED', message: 'stream closed' },
    };
    await queue.results.publish(result);
    await queue.results.publish({ ...result, jobId: randomUUID(), requester: 'someone-else' });

    const first = await ferry(['results', '--json']);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual([result]);

    const second = await ferry(['results']);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe('');
    expect(second.stderr).toContain('no unread results for cli-tester');
  });

  it('exits 5 naming the URL when Redis is down', async () => {
    prefix = `t-${randomUUID()}`;
    const down = await startRedis();
    await down.stop();
    const { code, stderr } = await ferry(['status', randomUUID()], { FERRY_REDIS_URL: down.url });
    expect(code).toBe(5);
    expect(stderr).toContain(`Redis at ${down.url}`);
  });
});

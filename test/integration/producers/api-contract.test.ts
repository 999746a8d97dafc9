import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  acceptedResponseSchema,
  cancelResponseSchema,
  errorResponseSchema,
  hostsResponseSchema,
  listResponseSchema,
  resultsResponseSchema,
  statusResponseSchema,
} from '../../../producers/api/responses.js';
import { call, readEvents, startHarness, waitForStatus, type Harness } from './harness.js';

const disk = (vm: string) => `file:/srv/xen/${vm}.img`;
const domain = (name: string, memoryMiB: number) => ({
  name,
  memoryMiB,
  vcpus: 1,
  disks: [disk(name)],
  vifs: [{ bridge: 'xenbr0' }],
});

const isFinal = (status: { state?: string }) =>
  ['completed', 'failed', 'cancelled', 'needs-attention'].includes(status.state ?? '');

describe('HTTP API contract', () => {
  let harness: Harness;
  let ops: string;

  beforeAll(async () => {
    harness = await startHarness({
      lab: {
        // 2 KiB per MiB of memory: web01 moves 1 MiB, slow01 16 MiB.
        bytesPerMiB: 2048,
        hosts: [
          {
            name: 'xen-a',
            totalMemoryMiB: 32_768,
            domains: [
              domain('web01', 512),
              domain('web02', 256),
              domain('web03', 256),
              domain('web04', 256),
              domain('slow01', 8192),
            ],
            // About a second for web01: long enough to see phases and bytes on the stream.
            transferRateBytesPerSec: 1_000_000,
          },
          { name: 'xen-b', totalMemoryMiB: 32_768 },
          { name: 'xen-c' },
        ],
      },
      tokens: [
        { name: 'ops', dashboard: true },
        { name: 'ticketing', hosts: ['xen-a', 'xen-b'] },
        { name: 'tight', rateLimit: { max: 3, windowMs: 60_000 } },
      ],
    });
    ops = harness.tokens.ops as string;
  });

  afterAll(async () => {
    await harness?.stop();
  });

  async function jobCount(): Promise<number> {
    const counts = await harness.queue.queue.getJobCounts();
    return Object.values(counts).reduce((sum, count) => sum + count, 0);
  }

  it('rejects requests without a valid token', async () => {
    const missing = await call(harness, 'GET', '/v1/hosts');
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toContain('Bearer');
    expect(errorResponseSchema.parse(missing.body).error.code).toBe('UNAUTHORIZED');

    const wrong = await call(harness, 'GET', '/v1/hosts', { token: 'ferry_not-a-real-token' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.fields).toEqual(['Authorization']);
  });

  it('queues a migration and streams its events to the result', async () => {
    const posted = await call(harness, 'POST', '/v1/migrations', {
      token: ops,
      body: { vm: 'web01', source: 'xen-a', target: 'xen-b', ticket: 'OPS-1', reason: 'contract test' },
    });
    expect(posted.status).toBe(202);
    const accepted = acceptedResponseSchema.parse(posted.body);
    expect(accepted.created).toBe(true);
    expect(accepted.state).toBe('queued');
    expect(posted.headers.get('location')).toBe(accepted.statusUrl);
    expect(accepted.statusUrl).toBe(`/v1/migrations/${accepted.jobId}`);

    const events = await readEvents(`${harness.baseUrl}${accepted.eventsUrl}`, ops);
    const names = events.map((event) => event.event);
    expect(names[0]).toBe('state');
    expect(names.at(-1)).toBe('result');
    expect(events.filter((event) => event.event === 'phase').map((event) => event.data.phase)).toContain(
      'migrate',
    );
    expect(names).toContain('bytes');
    const ids = events.map((event) => Number(event.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    const result = events.at(-1)?.data;
    expect(result.status).toBe('completed');
    expect(result.requester).toBe('ops');
    expect(result.jobId).toBe(accepted.jobId);

    const status = await call(harness, 'GET', accepted.statusUrl, { token: ops });
    expect(status.status).toBe(200);
    const report = statusResponseSchema.parse(status.body);
    expect(report.state).toBe('completed');
    expect(report.result?.target).toBe('xen-b');
    expect(report.result?.bytes).toBeGreaterThan(0);
  });

  it('keeps results for the requester until acknowledged', async () => {
    const first = await call(harness, 'GET', '/v1/results', { token: ops });
    expect(first.status).toBe(200);
    const unread = resultsResponseSchema.parse(first.body).results;
    expect(unread.map((entry) => entry.result.vm)).toContain('web01');

    const ack = await call(harness, 'POST', '/v1/results/ack', {
      token: ops,
      body: { entryIds: unread.map((entry) => entry.entryId) },
    });
    expect(ack.body).toEqual({ acknowledged: unread.length });
    const second = await call(harness, 'GET', '/v1/results', { token: ops });
    expect(second.body.results).toEqual([]);

    const other = await call(harness, 'GET', '/v1/results', { token: harness.tokens.ticketing as string });
    expect(other.body.results).toEqual([]);
  });

  it('lists migrations by state, one page at a time', async () => {
    // A second finished job, so that there are two pages of one.
    const posted = await call(harness, 'POST', '/v1/migrations', {
      token: ops,
      body: { vm: 'web02', source: 'xen-a', target: 'xen-b', reason: 'second page' },
    });
    await waitForStatus(harness, ops, posted.body.jobId, isFinal);

    const firstPage = await call(harness, 'GET', '/v1/migrations?state=completed&limit=1', { token: ops });
    expect(firstPage.status).toBe(200);
    const page = listResponseSchema.parse(firstPage.body);
    expect(page.jobs).toHaveLength(1);
    expect(page.nextCursor).toBeDefined();
    const secondPage = await call(
      harness,
      'GET',
      `/v1/migrations?state=completed&limit=1&cursor=${page.nextCursor}`,
      { token: ops },
    );
    const next = listResponseSchema.parse(secondPage.body);
    expect(next.jobs).toHaveLength(1);
    expect(next.jobs[0]?.jobId).not.toBe(page.jobs[0]?.jobId);
    expect([page.jobs[0]?.vm, next.jobs[0]?.vm].sort()).toEqual(['web01', 'web02']);

    const bad = await call(harness, 'GET', '/v1/migrations?state=finished&limit=500', { token: ops });
    expect(bad.status).toBe(400);
    expect(bad.body.error.fields).toEqual(['state', 'limit']);
  });

  it('cancels a waiting job', async () => {
    await harness.queue.queue.pause();
    try {
      const posted = await call(harness, 'POST', '/v1/migrations', {
        token: ops,
        body: { vm: 'web03', source: 'xen-a', target: 'xen-b', ticket: 'OPS-2' },
      });
      expect(posted.status).toBe(202);

      const cancelled = await call(harness, 'DELETE', posted.body.statusUrl, { token: ops });
      expect(cancelled.status).toBe(200);
      expect(cancelResponseSchema.parse(cancelled.body)).toEqual({
        jobId: posted.body.jobId,
        outcome: 'cancelled',
        status: 'cancelled',
      });
      const status = await call(harness, 'GET', posted.body.statusUrl, { token: ops });
      expect(status.body.state).toBe('cancelled');
      expect(status.body.result.error.message).toContain('Cancelled by ops');

      const again = await call(harness, 'DELETE', posted.body.statusUrl, { token: ops });
      expect(again.body.outcome).toBe('already-ended');
    } finally {
      await harness.queue.queue.resume();
    }
  });

  it('returns the same job for a repeated request', async () => {
    await harness.queue.queue.pause();
    const created: string[] = [];
    try {
      const before = await jobCount();
      const body = { vm: 'web04', source: 'xen-a', target: 'xen-b', ticket: 'OPS-3' };
      const keyed = { token: ops, body, headers: { 'Idempotency-Key': 'contract-key-1' } };

      const first = await call(harness, 'POST', '/v1/migrations', keyed);
      expect(first.status).toBe(202);
      created.push(first.body.jobId);
      const repeat = await call(harness, 'POST', '/v1/migrations', keyed);
      expect(repeat.status).toBe(202);
      expect(repeat.body.jobId).toBe(first.body.jobId);
      expect(repeat.body.created).toBe(false);
      expect(repeat.headers.get('idempotent-replayed')).toBe('true');

      const reused = await call(harness, 'POST', '/v1/migrations', {
        ...keyed,
        body: { ...body, ticket: 'OPS-4' },
      });
      expect(reused.status).toBe(422);
      expect(reused.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');

      // Without a key, the same requester, VM, hosts and ticket get the job still waiting.
      const plain = await call(harness, 'POST', '/v1/migrations', {
        token: ops,
        body: { ...body, ticket: 'OPS-5' },
      });
      created.push(plain.body.jobId);
      const plainRepeat = await call(harness, 'POST', '/v1/migrations', {
        token: ops,
        body: { ...body, ticket: 'OPS-5', reason: 'asked twice' },
      });
      expect(plainRepeat.body.jobId).toBe(plain.body.jobId);
      expect(plainRepeat.body.created).toBe(false);
      expect(plainRepeat.body.state).toBe('queued');

      // A ticket alone is no key: the same ticket for another VM is a new job.
      const otherVm = await call(harness, 'POST', '/v1/migrations', {
        token: ops,
        body: { ...body, vm: 'web03', ticket: 'OPS-5' },
      });
      expect(otherVm.body.created).toBe(true);
      created.push(otherVm.body.jobId);

      expect(await jobCount()).toBe(before + 3);
    } finally {
      for (const jobId of created) await call(harness, 'DELETE', `/v1/migrations/${jobId}`, { token: ops });
      await harness.queue.queue.resume();
    }
  });

  it('cancels a running job through its worker', async () => {
    const posted = await call(harness, 'POST', '/v1/migrations', {
      token: ops,
      body: { vm: 'slow01', source: 'xen-a', target: 'xen-b', reason: 'to be cancelled' },
    });
    const running = await waitForStatus(
      harness,
      ops,
      posted.body.jobId,
      (status) => status.progress?.phase === 'migrate',
    );
    expect(running.state).toBe('running');

    const cancelled = await call(harness, 'DELETE', posted.body.statusUrl, { token: ops });
    expect(cancelled.status).toBe(202);
    expect(cancelled.body.outcome).toBe('cancelling');

    const final = await waitForStatus(harness, ops, posted.body.jobId, isFinal);
    expect(final.state).toBe('cancelled');
    const onSource = harness.lab
      .host('xen-a')
      .sim.domains()
      .map((entry) => entry.name);
    expect(onSource).toContain('slow01');
  });

  it('rejects hosts the token may not use', async () => {
    const ticketing = harness.tokens.ticketing as string;
    const before = await jobCount();

    const denied = await call(harness, 'POST', '/v1/migrations', {
      token: ticketing,
      body: { vm: 'web03', source: 'xen-a', target: 'xen-c', ticket: 'OPS-6' },
    });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe('FORBIDDEN');
    expect(denied.body.error.fields).toEqual(['target']);
    expect(denied.body.error.message).toContain('xen-c');
    expect(await jobCount()).toBe(before);

    const hosts = await call(harness, 'GET', '/v1/hosts', { token: ticketing });
    expect(hostsResponseSchema.parse(hosts.body).hosts.map((host) => host.name)).toEqual(['xen-a', 'xen-b']);
    expect(JSON.stringify(hosts.body)).not.toMatch(/identityFile|hostKey|ssh/);

    // A job on xen-c, queued by another token, does not exist for this one.
    await harness.queue.queue.pause();
    try {
      const foreign = await call(harness, 'POST', '/v1/migrations', {
        token: ops,
        body: { vm: 'web03', source: 'xen-a', target: 'xen-c', ticket: 'OPS-7' },
      });
      const hidden = await call(harness, 'GET', foreign.body.statusUrl, { token: ticketing });
      expect(hidden.status).toBe(404);
      const cancel = await call(harness, 'DELETE', foreign.body.statusUrl, { token: ticketing });
      expect(cancel.status).toBe(404);
      const listed = await call(harness, 'GET', '/v1/migrations?state=queued', { token: ticketing });
      expect(listed.body.jobs.map((job: { jobId: string }) => job.jobId)).not.toContain(foreign.body.jobId);
      await call(harness, 'DELETE', foreign.body.statusUrl, { token: ops });
    } finally {
      await harness.queue.queue.resume();
    }
  });

  it('answers 429 once the token reaches its rate limit', async () => {
    const tight = harness.tokens.tight as string;
    for (let request = 0; request < 3; request += 1) {
      expect((await call(harness, 'GET', '/v1/hosts', { token: tight })).status).toBe(200);
    }
    const limited = await call(harness, 'GET', '/v1/hosts', { token: tight });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('RATE_LIMITED');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);

    // Limits are per token: another token is not affected.
    expect((await call(harness, 'GET', '/v1/hosts', { token: ops })).status).toBe(200);
  });

  it('serves health, metrics and the OpenAPI document without a token', async () => {
    const health = await call(harness, 'GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok', redis: 'ok' });

    const metrics = await call(harness, 'GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(
      /ferry_api_http_requests_total\{method="POST",route="\/v1\/migrations",status="202"\} \d+/,
    );
    expect(metrics.body).toMatch(
      /ferry_api_migrations_submitted_total\{channel="api",outcome="created"\} \d+/,
    );
    expect(metrics.body).toMatch(/ferry_queue_jobs\{type="completed"\} \d+/);

    const openapi = await call(harness, 'GET', '/v1/openapi.json');
    expect(openapi.status).toBe(200);
    expect(openapi.body.openapi).toBe('3.1.0');
    expect(Object.keys(openapi.body.paths)).toContain('/v1/migrations/{id}/events');
  });
});

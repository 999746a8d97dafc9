import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { signatureHeader, verifyCallbackSignature } from '../../../producers/callbacks/signature.js';
import { call, startHarness, waitForStatus, type Harness } from './harness.js';

const secret = 'callback-test-secret';

interface Delivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The status the receiver returned. */
  answered: number;
}

/** A receiver on loopback that returns 500 for the first delivery and 204 for the others. */
async function startReceiver(): Promise<{ server: Server; url: string; deliveries: Delivery[] }> {
  const deliveries: Delivery[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => {
      body += chunk;
    });
    request.on('end', () => {
      const answered = deliveries.length === 0 ? 500 : 204;
      deliveries.push({ path: request.url ?? '', headers: request.headers, body, answered });
      response.statusCode = answered;
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, deliveries };
}

describe('result callbacks', () => {
  let harness: Harness;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let ops: string;

  beforeAll(async () => {
    receiver = await startReceiver();
    harness = await startHarness({
      tokens: [{ name: 'ticketing' }],
      config: {
        callbacks: { allow: [`${receiver.url}/hooks/`], secret: { env: 'FERRY_TEST_CALLBACK_SECRET' } },
      },
      env: { FERRY_TEST_CALLBACK_SECRET: secret },
      callbackTiming: { pollMs: 50, resultPollMs: 100, retryBaseMs: 100, retryMaxMs: 200 },
    });
    ops = harness.tokens.ticketing as string;
  });

  afterAll(async () => {
    await harness?.stop();
    await new Promise((resolve) => receiver?.server.close(resolve));
  });

  it('posts the signed result and retries after a failure', async () => {
    const posted = await call(harness, 'POST', '/v1/migrations', {
      token: ops,
      body: {
        vm: 'web01',
        source: 'xen-a',
        target: 'xen-b',
        ticket: 'CHG-42',
        callbackUrl: `${receiver.url}/hooks/ferry?ticket=CHG-42`,
      },
    });
    expect(posted.status).toBe(202);
    const final = await waitForStatus(
      harness,
      ops,
      posted.body.jobId,
      (status) => status.result !== undefined,
    );
    expect(final.state).toBe('completed');

    const deadline = Date.now() + 15_000;
    while (receiver.deliveries.length < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(receiver.deliveries.map((delivery) => delivery.answered)).toEqual([500, 204]);

    for (const [index, delivery] of receiver.deliveries.entries()) {
      expect(delivery.path).toBe('/hooks/ferry?ticket=CHG-42');
      expect(delivery.headers['content-type']).toBe('application/json');
      expect(delivery.headers['ferry-delivery']).toBe(`${posted.body.jobId}:webhook`);
      expect(delivery.headers['ferry-attempt']).toBe(String(index + 1));
      const signature = delivery.headers[signatureHeader.toLowerCase()] as string;
      expect(verifyCallbackSignature(secret, signature, delivery.body)).toBe(true);
      expect(verifyCallbackSignature('another-secret', signature, delivery.body)).toBe(false);
      expect(verifyCallbackSignature(secret, signature, delivery.body.replace('completed', 'failed'))).toBe(
        false,
      );
    }
    const payload = JSON.parse(receiver.deliveries[1]?.body ?? '{}');
    expect(payload.event).toBe('migration.finished');
    expect(payload.result).toEqual(final.result);

    // Delivered: nothing is owed any more, and no third request comes.
    expect(await harness.queue.connection.zcard(`${harness.queue.prefix}:api:callbacks`)).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receiver.deliveries).toHaveLength(2);
  });

  it('rejects a callback URL outside the allow-list at enqueue', async () => {
    const before = await harness.queue.queue.getJobCounts();
    const disallowed = [
      `${receiver.url}/other/ferry`,
      `${receiver.url}/hooks/../admin`,
      `${receiver.url.replace('127.0.0.1', 'localhost')}/hooks/ferry`,
      `https://${receiver.url.slice('http://'.length)}/hooks/ferry`,
      'http://127.0.0.1:1/hooks/ferry',
    ];
    for (const callbackUrl of disallowed) {
      const response = await call(harness, 'POST', '/v1/migrations', {
        token: ops,
        body: { vm: 'web01', source: 'xen-b', target: 'xen-a', ticket: 'CHG-43', callbackUrl },
      });
      expect(response.status, callbackUrl).toBe(400);
      expect(response.body.error.fields).toEqual(['callbackUrl']);
      expect(response.body.error.message).toContain('allow-list');
    }
    expect(await harness.queue.queue.getJobCounts()).toEqual(before);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { call, startHarness, type Harness, type Json } from './harness.js';

/** One generated request, and the body field its error must name when it is a field error. */
interface Case {
  label: string;
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
  token?: 'good' | 'none' | 'bad';
  /** A field the 4xx body must list in error.fields. */
  field?: string;
}

/** Deterministic pseudo-random numbers (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let value = Math.imul(state ^ (state >>> 15), 1 | state);
    value = (value + Math.imul(value ^ (value >>> 7), 61 | value)) ^ value;
    return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const valid = { vm: 'web01', source: 'xen-a', target: 'xen-b', reason: 'bad input test' };

const shellNames = [
  'web01;touch /tmp/x',
  '$(id)',
  '`id`',
  'web01 && true',
  'web01|nc 127.0.0.1 1',
  '-rf',
  "a'b",
  'a"b',
  'web01\nid',
  'web01\u0000',
  '../../etc/passwd',
  'web 01',
  '*',
  '~root',
  '>out',
  'web01\u202e',
  'ünicode',
  '',
  'x'.repeat(65),
  '.hidden',
];

const wrongTypes: unknown[] = [null, 1, -1, 1.5, true, false, [], ['web01'], {}, { name: 'web01' }, 1e308];

/** Values that are wrong for every field of `options`, each with the path its error names. */
const badOptions: Array<[unknown, string]> = [
  ['fast', 'options'],
  [[], 'options'],
  [{ tunnel: 'ssh' }, 'options.tunnel'],
  [{ tunnel: 1 }, 'options.tunnel'],
  [{ tunnel: 'RELAY' }, 'options.tunnel'],
  [{ attempts: 0 }, 'options.attempts'],
  [{ attempts: 11 }, 'options.attempts'],
  [{ attempts: 2.5 }, 'options.attempts'],
  [{ attempts: '3' }, 'options.attempts'],
  [{ attempts: -1 }, 'options.attempts'],
  [{ timeouts: 5 }, 'options.timeouts'],
  [{ timeouts: { connectMs: 0 } }, 'options.timeouts.connectMs'],
  [{ timeouts: { connectMs: 300_001 } }, 'options.timeouts.connectMs'],
  [{ timeouts: { migrateMs: 1.5 } }, 'options.timeouts.migrateMs'],
  [{ timeouts: { verifyMs: '10' } }, 'options.timeouts.verifyMs'],
  [{ timeouts: { preflightMs: -5 } }, 'options.timeouts.preflightMs'],
  [{ timeouts: { bogusMs: 5 } }, 'options.timeouts.bogusMs'],
  [{ retries: 3 }, 'options.retries'],
];

function generateCases(allowedCallback: string): Case[] {
  const cases: Case[] = [];
  const post = (label: string, body: unknown, field?: string, headers?: Record<string, string>): void => {
    cases.push({
      label,
      method: 'POST',
      path: '/v1/migrations',
      body: JSON.stringify(body),
      ...(field === undefined ? {} : { field }),
      ...(headers === undefined ? {} : { headers }),
    });
  };

  // Wrong types and shell metacharacters in every name field.
  for (const field of ['vm', 'source', 'target'] as const) {
    for (const value of wrongTypes) {
      post(`${field} as ${JSON.stringify(value)}`, { ...valid, [field]: value }, field);
    }
    for (const name of shellNames) {
      post(`${field} ${JSON.stringify(name)}`, { ...valid, [field]: name }, field);
    }
  }
  for (const field of ['reason', 'ticket'] as const) {
    for (const value of [
      ...wrongTypes.filter((value) => value !== null),
      '',
      '   ',
      'a\nb',
      'a\u0007b',
      'x\u202ey',
    ]) {
      post(`${field} as ${JSON.stringify(value)}`, { ...valid, [field]: value }, field);
    }
    post(`${field} too long`, { ...valid, [field]: 'x'.repeat(field === 'reason' ? 501 : 201) }, field);
  }
  for (const [options, field] of badOptions) {
    post(`options ${JSON.stringify(options)}`, { ...valid, options }, field);
  }

  // Missing fields.
  const required = ['vm', 'source', 'target'] as const;
  for (const field of required) {
    const { [field]: _dropped, ...rest } = valid;
    post(`missing ${field}`, rest, field);
  }
  const { reason: _reason, ...withoutReason } = valid;
  post('missing reason and ticket', withoutReason, 'reason');
  post('empty object', {}, 'vm');

  // Hosts the inventory does not have, and a target equal to the source.
  for (const host of [
    'xen-z',
    'XEN-A',
    'xen-a.example.com',
    'localhost',
    '127.0.0.1',
    'xen_a',
    'a'.repeat(64),
  ]) {
    post(`unknown source ${host}`, { ...valid, source: host }, 'source');
    post(`unknown target ${host}`, { ...valid, target: host }, 'target');
  }
  post('target equals source', { ...valid, target: 'xen-a' }, 'target');

  // Fields the API sets itself or does not know.
  post('requester in body', { ...valid, requester: 'someone-else' }, 'requester');
  for (const extra of ['jobId', 'command', 'address', 'hostKey', 'priority', '__proto__x', 'constructor']) {
    post(`unknown field ${extra}`, { ...valid, [extra]: 'x' }, extra);
  }

  // Callback URLs that are malformed or outside the allow-list.
  for (const url of [
    'ftp://127.0.0.1/hooks/x',
    'javascript:alert(1)',
    'file:///etc/passwd',
    'http://127.0.0.1:1/other',
    `${allowedCallback}/../admin`,
    allowedCallback.replace('http://', 'http://user:pass@'),
    allowedCallback.replace('/hooks', '/hooksx'),
    'not a url',
    `${allowedCallback}/${'x'.repeat(3000)}`,
    '',
  ]) {
    post(`callbackUrl ${url.slice(0, 40)}`, { ...valid, callbackUrl: url }, 'callbackUrl');
  }
  for (const value of wrongTypes) {
    post(`callbackUrl as ${JSON.stringify(value)}`, { ...valid, callbackUrl: value }, 'callbackUrl');
  }

  // Bodies that are not a request object at all.
  for (const body of [
    'null',
    '1',
    '"text"',
    'true',
    '[]',
    '[{"vm":"web01"}]',
    '{"vm":',
    '{vm: 1}',
    "{'vm': 'a'}",
    '{"a":1,}',
    '\u0000',
    '{"__proto__":{"polluted":1}}',
    '{"constructor":{"prototype":{"polluted":1}}}',
    '[['.repeat(4000) + ']]'.repeat(4000),
  ]) {
    cases.push({ label: `raw body ${body.slice(0, 30)}`, method: 'POST', path: '/v1/migrations', body });
  }
  cases.push({ label: 'empty JSON body', method: 'POST', path: '/v1/migrations', body: '' });
  for (const type of [
    'text/plain',
    'application/xml',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/json; charset=utf-16',
  ]) {
    cases.push({
      label: `content type ${type}`,
      method: 'POST',
      path: '/v1/migrations',
      body: JSON.stringify(valid),
      headers: { 'content-type': type },
    });
  }

  // Huge bodies: past the 16 KiB limit, and a long field within it.
  for (const size of [16_385, 64 * 1024, 1024 * 1024, 4 * 1024 * 1024]) {
    post(`huge body ${size}`, { ...valid, reason: 'x'.repeat(size) });
  }
  post('reason of 15000 characters', { ...valid, reason: 'x'.repeat(15_000) }, 'reason');

  // Bad headers.
  for (const key of ['has space', 'x'.repeat(256), '', 'tab\there']) {
    post(`Idempotency-Key ${JSON.stringify(key.slice(0, 20))}`, valid, 'Idempotency-Key', {
      'Idempotency-Key': key,
    });
  }
  for (const token of ['none', 'bad'] as const) {
    cases.push({
      label: `token ${token}`,
      method: 'POST',
      path: '/v1/migrations',
      body: JSON.stringify(valid),
      token,
    });
  }

  // Other routes: ids, queries and bodies.
  for (const id of [
    'not%20an%20id',
    'x'.repeat(65),
    '..%2F..%2Fetc',
    '%E0%A4%A',
    'a;b',
    '$(id)',
    'x'.repeat(200),
  ]) {
    cases.push({ label: `GET id ${id.slice(0, 20)}`, method: 'GET', path: `/v1/migrations/${id}` });
    cases.push({ label: `DELETE id ${id.slice(0, 20)}`, method: 'DELETE', path: `/v1/migrations/${id}` });
    cases.push({ label: `events id ${id.slice(0, 20)}`, method: 'GET', path: `/v1/migrations/${id}/events` });
  }
  for (const query of [
    'state=done',
    'state=',
    'limit=0',
    'limit=101',
    'limit=abc',
    'limit=1.5',
    'cursor=!!',
    'cursor=bm90IGEgY3Vyc29y',
    'state=queued&state=running',
    'requester=a;b',
    'extra=1',
  ]) {
    cases.push({ label: `list ?${query}`, method: 'GET', path: `/v1/migrations?${query}` });
  }
  for (const query of ['count=0', 'count=1000', 'count=x', 'other=1']) {
    cases.push({ label: `results ?${query}`, method: 'GET', path: `/v1/results?${query}` });
  }
  for (const body of [
    {},
    { entryIds: [] },
    { entryIds: ['x'] },
    { entryIds: 'a' },
    { entryIds: [1] },
    { entryIds: Array(101).fill('1-1') },
  ]) {
    cases.push({
      label: `ack ${JSON.stringify(body).slice(0, 30)}`,
      method: 'POST',
      path: '/v1/results/ack',
      body: JSON.stringify(body),
    });
  }
  for (const body of [{}, { text: 1 }, { text: 'x'.repeat(2001) }, { text: 'hosts', more: 1 }]) {
    cases.push({
      label: `chat ${JSON.stringify(body).slice(0, 30)}`,
      method: 'POST',
      path: '/v1/chat',
      body: JSON.stringify(body),
    });
  }
  for (const [method, path] of [
    ['PUT', '/v1/migrations'],
    ['PATCH', '/v1/migrations/abc'],
    ['GET', '/v2/migrations'],
    ['POST', '/v1/hosts'],
    ['GET', '/v1/migrations/abc/events/more'],
  ]) {
    cases.push({ label: `${method} ${path}`, method: method as string, path: path as string });
  }

  // Random mutations of a valid request: one field set to a value that is wrong for it.
  const next = random(20261204);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  const pools: Record<string, unknown[]> = {
    vm: [...wrongTypes, ...shellNames],
    source: [...wrongTypes, ...shellNames, 'xen-z', 'nowhere'],
    target: [...wrongTypes, ...shellNames, 'xen-z', 'xen-a'],
    reason: [...wrongTypes.filter((value) => value !== null), '', 'x'.repeat(501), 'line\nbreak'],
    ticket: [...wrongTypes.filter((value) => value !== null), '', 'x'.repeat(201), 'bell\u0007'],
    callbackUrl: [...wrongTypes, 'ftp://x/', 'http://127.0.0.1:1/', 'gopher://a'],
    requester: ['root', 'anyone', ''],
  };
  while (cases.length < 1_100) {
    const field = pick(Object.keys(pools));
    const value = pick(pools[field] as unknown[]);
    const mutated: Record<string, unknown> = { ...valid, [field]: value };
    // Sometimes also drop another field or add a second problem.
    if (next() < 0.3) delete mutated[pick(['vm', 'source', 'target'])];
    if (next() < 0.2) mutated.options = pick(badOptions)[0];
    post(`random ${field}=${JSON.stringify(value)?.slice(0, 30)}`, mutated);
  }
  return cases;
}

describe('HTTP API bad input', () => {
  let harness: Harness;
  let allowedCallback: string;

  beforeAll(async () => {
    allowedCallback = 'http://127.0.0.1:9/hooks';
    harness = await startHarness({
      worker: false,
      tokens: [{ name: 'fuzzer', rateLimit: { max: 100_000, windowMs: 60_000 } }],
      config: { callbacks: { allow: [`${allowedCallback}/`], secret: { env: 'CALLBACK_SECRET' } } },
      env: { CALLBACK_SECRET: 'bad-input-test-secret' },
    });
  });

  afterAll(async () => {
    await harness?.stop();
  });

  it('answers 1,000 malformed requests with 4xx and queues nothing', async () => {
    const cases = generateCases(allowedCallback);
    expect(cases.length).toBeGreaterThanOrEqual(1_000);
    const token = harness.tokens.fuzzer as string;
    const failures: string[] = [];

    const send = async (testCase: Case): Promise<void> => {
      const headers: Record<string, string> = { ...testCase.headers };
      if (testCase.token === undefined || testCase.token === 'good') {
        headers.authorization = `Bearer ${token}`;
      }
      if (testCase.token === 'bad') headers.authorization = 'Bearer ferry_wrong';
      let status: number;
      let body: Json;
      try {
        const response = await call(harness, testCase.method, testCase.path, {
          headers,
          ...(testCase.body === undefined ? {} : { body: testCase.body }),
        });
        status = response.status;
        body = response.body;
      } catch (error) {
        failures.push(`${testCase.label}: no answer (${(error as Error).message})`);
        return;
      }
      if (status < 400 || status >= 500) {
        failures.push(`${testCase.label}: status ${status}`);
        return;
      }
      if (
        typeof body !== 'object' ||
        typeof body?.error?.code !== 'string' ||
        typeof body.error.message !== 'string'
      ) {
        failures.push(`${testCase.label}: ${status} without an error body`);
        return;
      }
      if (testCase.field !== undefined && !(body.error.fields ?? []).includes(testCase.field)) {
        failures.push(
          `${testCase.label}: fields ${JSON.stringify(body.error.fields)} lack ${testCase.field}`,
        );
      }
    };

    // Eight requests at a time over real sockets.
    for (let index = 0; index < cases.length; index += 8) {
      await Promise.all(cases.slice(index, index + 8).map(send));
    }

    expect(failures).toEqual([]);
    const counts = await harness.queue.queue.getJobCounts();
    expect(Object.values(counts).reduce((sum, count) => sum + count, 0)).toBe(0);
    // No reservation, idempotency record or callback was left either.
    expect(await harness.queue.connection.keys(`${harness.queue.prefix}:api:*`)).toEqual([]);
  });

  it('still queues a valid request afterwards', async () => {
    const response = await call(harness, 'POST', '/v1/migrations', {
      token: harness.tokens.fuzzer as string,
      body: valid,
    });
    expect(response.status).toBe(202);
    expect(response.body.created).toBe(true);
    await call(harness, 'DELETE', response.body.statusUrl, { token: harness.tokens.fuzzer as string });
  });
});

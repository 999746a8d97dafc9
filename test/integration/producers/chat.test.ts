import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { slackSignature } from '../../../producers/chat/slack-signature.js';
import { defaultLabHosts } from '../../../src/lab/lab.js';
import { startHarness, type Harness, type Json } from './harness.js';

const signingSecret = 'slack-test-signing-secret';

/** Stands in for Slack's response URL: records every message posted to it. */
async function startResponseUrl(): Promise<{ server: Server; url: string; messages: Json[] }> {
  const messages: Json[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => {
      body += chunk;
    });
    request.on('end', () => {
      messages.push({ path: request.url, ...JSON.parse(body) });
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, messages };
}

describe('chat commands', () => {
  let harness: Harness;
  let slack: Awaited<ReturnType<typeof startResponseUrl>>;

  beforeAll(async () => {
    slack = await startResponseUrl();
    harness = await startHarness({
      lab: { hosts: [...defaultLabHosts, { name: 'xen-c' }] },
      tokens: [{ name: 'chatbot', hosts: ['xen-a', 'xen-b'] }],
      config: {
        slack: {
          signingSecret: { env: 'SLACK_SIGNING_SECRET' },
          responseUrlAllow: [`${slack.url}/commands/`],
          users: ['U0ALLOWED', 'U0OTHER'],
          hosts: ['xen-a', 'xen-b'],
        },
      },
      env: { SLACK_SIGNING_SECRET: signingSecret },
      callbackTiming: { pollMs: 50, resultPollMs: 100 },
    });
  });

  afterAll(async () => {
    await harness?.stop();
    await new Promise((resolve) => slack?.server.close(resolve));
  });

  async function slashCommand(
    text: string,
    options: { user?: string; timestamp?: number; secret?: string; responsePath?: string } = {},
  ): Promise<{ status: number; body: Json; ms: number }> {
    const form = new URLSearchParams({
      token: 'deprecated-verification-token',
      team_id: 'T0TEAM',
      user_id: options.user ?? 'U0ALLOWED',
      user_name: 'operator',
      command: '/ferry',
      text,
      response_url: `${slack.url}${options.responsePath ?? '/commands/1'}`,
    }).toString();
    const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
    const started = Date.now();
    const response = await fetch(`${harness.baseUrl}/v1/chat/slack`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-slack-request-timestamp': timestamp,
        'x-slack-signature': slackSignature(options.secret ?? signingSecret, timestamp, form),
      },
      body: form,
    });
    const raw = await response.text();
    return {
      status: response.status,
      body: raw === '' ? undefined : JSON.parse(raw),
      ms: Date.now() - started,
    };
  }

  async function messagesFor(path: string, count: number): Promise<Json[]> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const found = slack.messages.filter((message) => message.path === path);
      if (found.length >= count || Date.now() > deadline) return found;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('migrates from a Slack command and posts progress and the result', async () => {
    const reply = await slashCommand('migrate web01 from xen-a to xen-b because kernel patching', {
      responsePath: '/commands/migrate',
    });
    expect(reply.status).toBe(200);
    expect(reply.ms).toBeLessThan(3_000);
    expect(reply.body.response_type).toBe('in_channel');
    const jobId = /job `([0-9a-f-]{36})`/.exec(reply.body.text)?.[1];
    expect(jobId).toBeDefined();

    const messages = await messagesFor('/commands/migrate', 2);
    const texts = messages.map((message) => message.text as string);
    expect(texts.some((text) => text.includes('*running*'))).toBe(true);
    const last = texts.at(-1) ?? '';
    expect(last).toContain(jobId);
    expect(last).toContain('*completed*');
    expect(messages.every((message) => message.response_type === 'in_channel')).toBe(true);

    const status = await slashCommand(`status ${jobId}`, { responsePath: '/commands/status' });
    expect(status.body.response_type).toBe('ephemeral');
    expect(status.body.text).toContain('*completed*');
  });

  it('answers help for text it does not understand', async () => {
    const unknown = await slashCommand('migarte web01 to xen-b');
    expect(unknown.status).toBe(200);
    expect(unknown.body.response_type).toBe('ephemeral');
    expect(unknown.body.text).toContain('Did you mean "migrate"?');
    expect(unknown.body.text).toContain('migrate &lt;vm&gt; from &lt;source&gt;');

    const incomplete = await slashCommand('migrate web01 to xen-b because reasons');
    expect(incomplete.body.text).toContain('migrate needs "from &lt;source&gt;"');

    const badName = await slashCommand('migrate web01;reboot from xen-a to xen-b because x');
    expect(badName.body.text).toContain('vm is invalid');
    expect(await harness.queue.queue.getJobCounts('waiting', 'active')).toEqual({ waiting: 0, active: 0 });

    const hosts = await slashCommand('hosts');
    expect(hosts.body.text).toBe('Hosts you may use: `xen-a`, `xen-b`.');
  });

  it('rejects bad signatures, stale timestamps and unknown users', async () => {
    const forged = await slashCommand('hosts', { secret: 'not-the-secret' });
    expect(forged.status).toBe(401);
    expect(forged.body.error.code).toBe('UNAUTHORIZED');

    const stale = await slashCommand('hosts', { timestamp: Math.floor(Date.now() / 1000) - 600 });
    expect(stale.status).toBe(401);
    expect(stale.body.error.message).toContain('too old');

    const stranger = await slashCommand('migrate web02 from xen-a to xen-b because x', {
      user: 'U0STRANGER',
    });
    expect(stranger.status).toBe(200);
    expect(stranger.body.text).toContain('not allowed');

    const foreignUrl = await slashCommand('hosts', { responsePath: '/elsewhere' });
    expect(foreignUrl.body.text).toContain('allow-list');
  });

  it('runs the same commands for a bot with an API token', async () => {
    const token = harness.tokens.chatbot as string;
    const send = async (text: string): Promise<Json> => {
      const response = await fetch(`${harness.baseUrl}/v1/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ text }),
      });
      expect(response.status).toBe(200);
      return response.json();
    };

    const denied = await send('migrate web02 from xen-a to xen-c ticket CHG-9');
    expect(denied.text).toContain('chatbot may not migrate with target "xen-c"');

    const queued = await send('migrate web02 from xen-a to xen-b via direct ticket CHG-9');
    expect(queued.jobId).toBeDefined();
    const again = await send('migrate web02 from xen-a to xen-b ticket CHG-9');
    expect(again.jobId).toBe(queued.jobId);
    expect(again.text).toContain('already queued');

    const cancelled = await send(`cancel ${queued.jobId}`);
    expect(cancelled.text).toMatch(/Cancell(ed|ing) job/);
  });
});

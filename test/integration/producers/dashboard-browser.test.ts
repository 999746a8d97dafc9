import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { call, startHarness, waitForStatus, type Harness } from './harness.js';

/** Debian's Chromium, installed by scripts/ensure-os-packages.mjs. */
const chromiumPath = '/usr/bin/chromium';

describe('dashboard in a browser', () => {
  let harness: Harness;
  let browser: Browser;

  beforeAll(async () => {
    harness = await startHarness({
      tokens: [{ name: 'operator', dashboard: true }, { name: 'ticketing' }],
    });
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      // Chromium's background services would only try to reach the network.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await harness?.stop();
  });

  it('logs in with a token and shows a finished migration', async () => {
    const token = harness.tokens.operator as string;
    const posted = await call(harness, 'POST', '/v1/migrations', {
      token,
      body: { vm: 'web01', source: 'xen-a', target: 'xen-b', ticket: 'UI-1' },
    });
    const final = await waitForStatus(
      harness,
      token,
      posted.body.jobId,
      (status) => status.result !== undefined,
    );
    expect(final.state).toBe('completed');

    const page = await browser.newPage();
    try {
      // Without a session the board sends the browser to the login page.
      await page.goto(`${harness.baseUrl}/ui/queue/migrations?status=completed`);
      expect(new URL(page.url()).pathname).toBe('/ui/login');

      await page.fill('#token', 'ferry_wrong-token');
      await page.click('button[type=submit]');
      await page.locator('.error').waitFor();
      expect(await page.locator('.error').textContent()).toBe('This token is not valid.');

      await page.fill('#token', token);
      await page.click('button[type=submit]');
      await page.waitForURL('**/ui/queue/migrations?status=completed');
      await page
        .getByText(posted.body.jobId as string)
        .first()
        .waitFor({ timeout: 15_000 });
      expect(await page.title()).toBe('ferry migrations');

      const cookies = await page.context().cookies();
      const session = cookies.find((cookie) => cookie.name === 'ferry_session');
      expect(session?.httpOnly).toBe(true);
      expect(session?.value).not.toContain(token);
    } finally {
      await page.close();
    }
  });

  it('keeps tokens without dashboard access out', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${harness.baseUrl}/ui/login`);
      await page.fill('#token', harness.tokens.ticketing as string);
      await page.click('button[type=submit]');
      await page.locator('.error').waitFor();
      expect(await page.locator('.error').textContent()).toBe(
        'The token ticketing may not open the dashboard.',
      );
      expect(new URL(page.url()).pathname).toBe('/ui/login');
    } finally {
      await page.close();
    }

    const api = await call(harness, 'GET', '/ui/api/queues', { token: harness.tokens.ticketing as string });
    expect(api.status).toBe(403);
    expect(api.body.error.code).toBe('FORBIDDEN');
    const anonymous = await call(harness, 'GET', '/ui/api/queues');
    expect(anonymous.status).toBe(401);
    const operator = await call(harness, 'GET', '/ui/api/queues', {
      token: harness.tokens.operator as string,
    });
    expect(operator.status).toBe(200);
  });
});

import { createHmac } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { signCallback, verifyCallbackSignature } from '../../../producers/callbacks/signature.js';
import { checkSlackSignature, slackSignature } from '../../../producers/chat/slack-signature.js';

const secret = 'test-secret';
const body = '{"event":"migration.finished","result":{"status":"completed"}}';

describe('callback signatures', () => {
  it('signs the timestamp and the body with HMAC-SHA256', () => {
    const header = signCallback(secret, body, 1_700_000_000);
    const expected = createHmac('sha256', secret).update(`1700000000.${body}`).digest('hex');
    expect(header).toBe(`t=1700000000,v1=${expected}`);
  });

  it('verifies a fresh signature', () => {
    const now = 1_700_000_000;
    const header = signCallback(secret, body, now);
    expect(verifyCallbackSignature(secret, header, body, { nowSeconds: now + 10 })).toBe(true);
  });

  it('rejects another body, secret, or an old timestamp', () => {
    const now = 1_700_000_000;
    const header = signCallback(secret, body, now);
    expect(verifyCallbackSignature(secret, header, `${body} `, { nowSeconds: now })).toBe(false);
    expect(verifyCallbackSignature('other', header, body, { nowSeconds: now })).toBe(false);
    expect(verifyCallbackSignature(secret, header, body, { nowSeconds: now + 301 })).toBe(false);
    expect(
      verifyCallbackSignature(secret, header, body, { nowSeconds: now + 301, toleranceSeconds: 600 }),
    ).toBe(true);
  });

  it('rejects malformed headers', () => {
    for (const header of [
      undefined,
      '',
      't=abc,v1=00',
      'v1=00',
      `t=1700000000,v1=${'z'.repeat(64)}`,
      't=1700000000',
    ]) {
      expect(
        verifyCallbackSignature(secret, header, body, { nowSeconds: 1_700_000_000 }),
        String(header),
      ).toBe(false);
    }
  });

  it('accepts any matching v1 entry, for a secret roll-over', () => {
    const now = 1_700_000_000;
    const good = signCallback(secret, body, now).split(',')[1];
    expect(
      verifyCallbackSignature(secret, `t=${now},v1=${'0'.repeat(64)},${good}`, body, { nowSeconds: now }),
    ).toBe(true);
  });
});

describe('Slack signatures', () => {
  // The example from Slack's "Verifying requests from Slack" documentation.
  const slackSecret = '8f742231b10e8888abcd99yyyzzz85a5';
  const slackBody =
    'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
  const slackTimestamp = '1531420618';

  it("matches the signature of Slack's documented example", () => {
    expect(slackSignature(slackSecret, slackTimestamp, slackBody)).toBe(
      'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
    );
    expect(
      checkSlackSignature(
        slackSecret,
        slackTimestamp,
        slackSignature(slackSecret, slackTimestamp, slackBody),
        slackBody,
        1_531_420_618,
      ),
    ).toBe('valid');
  });

  it('tells missing, stale and wrong signatures apart', () => {
    const signature = slackSignature(slackSecret, slackTimestamp, slackBody);
    expect(checkSlackSignature(slackSecret, undefined, signature, slackBody, 1_531_420_618)).toBe('missing');
    expect(checkSlackSignature(slackSecret, slackTimestamp, undefined, slackBody, 1_531_420_618)).toBe(
      'missing',
    );
    expect(checkSlackSignature(slackSecret, slackTimestamp, signature, slackBody, 1_531_420_618 + 301)).toBe(
      'stale',
    );
    expect(
      checkSlackSignature(slackSecret, slackTimestamp, signature, `${slackBody}&x=1`, 1_531_420_618),
    ).toBe('mismatch');
    expect(checkSlackSignature(slackSecret, slackTimestamp, 'v0=short', slackBody, 1_531_420_618)).toBe(
      'mismatch',
    );
  });
});

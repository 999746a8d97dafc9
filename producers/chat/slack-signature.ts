/**
 * Verification of Slack's request signatures: `X-Slack-Signature` is `v0=` and the hex
 * HMAC-SHA256, under the app's signing secret, of `v0:<X-Slack-Request-Timestamp>:<raw body>`.
 * Slack's documentation ("Verifying requests from Slack") recommends rejecting timestamps more
 * than five minutes from now, so that a captured request cannot be replayed later.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Largest accepted difference between Slack's timestamp and our clock, in seconds. */
export const slackToleranceSeconds = 300;

export type SlackSignatureCheck = 'valid' | 'missing' | 'stale' | 'mismatch';

/** Computes the X-Slack-Signature value of a body, as Slack sends it (also used by tests). */
export function slackSignature(secret: string, timestamp: string, rawBody: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${rawBody}`).digest('hex')}`;
}

export function checkSlackSignature(
  secret: string,
  timestamp: string | undefined,
  signature: string | undefined,
  rawBody: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): SlackSignatureCheck {
  if (timestamp === undefined || signature === undefined) return 'missing';
  if (!/^\d{1,12}$/.test(timestamp)) return 'missing';
  if (Math.abs(nowSeconds - Number(timestamp)) > slackToleranceSeconds) return 'stale';
  if (!/^v0=[0-9a-f]{64}$/.test(signature)) return 'mismatch';

  const expected = Buffer.from(slackSignature(secret, timestamp, rawBody));
  return timingSafeEqual(expected, Buffer.from(signature)) ? 'valid' : 'mismatch';
}

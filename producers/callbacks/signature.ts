/**
 * Signatures of result callbacks. The `Ferry-Signature` header is `t=<unix seconds>,v1=<hex>`,
 * where the hex is HMAC-SHA256 under the shared secret of `<t>.<raw body>`. A receiver recomputes
 * it over the exact bytes it received, compares in constant time, and rejects a timestamp older
 * than its tolerance, so that a captured delivery cannot be replayed later.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

import type { DeliveryEncoder } from './dispatcher.js';

export const signatureHeader = 'Ferry-Signature';
/** How far a receiver lets the timestamp differ from its clock by default, in seconds (5 min). */
export const defaultToleranceSeconds = 300;

function hmacHex(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/** Returns the Ferry-Signature header value for a body sent at `timestamp` (unix seconds). */
export function signCallback(
  secret: string,
  body: string,
  timestamp = Math.floor(Date.now() / 1000),
): string {
  return `t=${timestamp},v1=${hmacHex(secret, timestamp, body)}`;
}

export interface VerifyOptions {
  /** Maximum difference between the timestamp and now, in seconds. Default 300. */
  toleranceSeconds?: number;
  /** The receiver's clock, in unix seconds. Default now. */
  nowSeconds?: number;
}

/**
 * Returns true when `header` is a valid signature of `body` under `secret`, with a timestamp
 * within the tolerance. Any `v1` entry may match, which lets a sender roll its secret over.
 */
export function verifyCallbackSignature(
  secret: string,
  header: string | undefined,
  body: string,
  options: VerifyOptions = {},
): boolean {
  if (header === undefined) return false;
  const parts = header.split(',').map((part) => part.trim().split('='));
  const timestampText = parts.find(([key]) => key === 't')?.[1];
  if (timestampText === undefined || !/^\d{1,12}$/.test(timestampText)) return false;

  const timestamp = Number(timestampText);
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > (options.toleranceSeconds ?? defaultToleranceSeconds)) return false;

  const expected = Buffer.from(hmacHex(secret, timestamp, body), 'hex');
  return parts
    .filter(([key, value]) => key === 'v1' && value !== undefined && /^[0-9a-f]{64}$/.test(value))
    .some(([, value]) => timingSafeEqual(Buffer.from(value ?? '', 'hex'), expected));
}

/** Event name in the body of every result callback. */
export const resultEventName = 'migration.finished';

/**
 * Returns the encoder of webhook deliveries: the body is `{"event":"migration.finished","result":
 * ...}` and the Ferry-Signature header signs it with `secret`.
 */
export function webhookEncoder(secret: string): DeliveryEncoder {
  return (_record, result) => {
    const body = JSON.stringify({ event: resultEventName, result });
    return { body, headers: { [signatureHeader]: signCallback(secret, body) } };
  };
}

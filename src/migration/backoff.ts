/** Settings of the delay between attempts of a job. */
export interface RetryBackoff {
  /** Delay before the second attempt, before jitter. Default 5 s. */
  baseDelayMs: number;
  /** Upper bound of any delay. Default 5 min. */
  maxDelayMs: number;
}

export const defaultRetryBackoff: RetryBackoff = { baseDelayMs: 5_000, maxDelayMs: 300_000 };

/**
 * Computes the delay before the next attempt: exponential in the attempts made, with "equal
 * jitter" (half fixed, half random), so that jobs that failed together do not all retry in the
 * same instant against the same host.
 */
export function retryDelayMs(
  attemptsMade: number,
  backoff: RetryBackoff,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, attemptsMade - 1);
  const ceiling = Math.min(backoff.maxDelayMs, backoff.baseDelayMs * 2 ** exponent);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

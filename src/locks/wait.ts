/** Small waiting primitives of the lock scheduler: wake-ups, timeouts and abortable waits. */

/** Reason a Waiter's wait ended. */
export type WakeReason = 'woken' | 'timeout' | 'stopping';

/**
 * One waiting job's wake-up: wake() ends the current wait, or the next one if none runs, so a
 * wake-up that arrives between two waits is not lost.
 */
export class Waiter {
  #pending: WakeReason | undefined;
  #resolve: ((reason: WakeReason) => void) | undefined;

  wake(reason: Exclude<WakeReason, 'timeout'> = 'woken'): void {
    // A stop request wins over an ordinary wake-up that is still pending.
    if (this.#pending !== 'stopping') this.#pending = reason;
    const resolve = this.#resolve;
    this.#resolve = undefined;
    resolve?.(reason);
  }

  /** Waits up to `timeoutMs` for wake(); rejects with the signal's reason when it aborts. */
  async wait(timeoutMs: number, signal: AbortSignal): Promise<WakeReason> {
    signal.throwIfAborted();
    const pending = this.#pending;
    if (pending !== undefined) {
      if (pending !== 'stopping') this.#pending = undefined;
      return pending;
    }
    let timer: NodeJS.Timeout | undefined;
    let onAbort: () => void = () => undefined;
    try {
      return await new Promise<WakeReason>((resolve, reject) => {
        this.#resolve = (reason) => resolve(reason);
        timer = setTimeout(() => resolve('timeout'), Math.max(0, timeoutMs));
        onAbort = () => reject(signal.reason as Error);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      this.#resolve = undefined;
      if (this.#pending !== 'stopping') this.#pending = undefined;
    }
  }
}

/** Rejects with the signal's reason as soon as it aborts; otherwise settles as `work` does. */
export async function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** Error of withTimeout: the work did not settle in time (it may still settle later). */
export class TimeoutError extends Error {
  constructor(what: string, timeoutMs: number) {
    super(`${what} did not finish within ${timeoutMs} ms.`);
    this.name = 'TimeoutError';
  }
}

/**
 * Settles as `work` does, or rejects with TimeoutError after `timeoutMs`. The work itself goes
 * on: a Redis command queued while the connection is down still runs once it is back.
 */
export async function withTimeout<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, timeoutMs)), timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

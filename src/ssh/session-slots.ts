/**
 * A counting semaphore for the sessions of one connection. sshd rejects sessions beyond its
 * MaxSessions, so callers wait here for a free slot instead of failing.
 */
export class SessionSlots {
  #free: number;
  readonly #waiting: Array<() => void> = [];

  constructor(readonly size: number) {
    this.#free = size;
  }

  get inUse(): number {
    return this.size - this.#free;
  }

  /** Waits for a free slot; rejects with `signal.reason` when aborted while waiting. */
  async take(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.#free > 0) {
      this.#free -= 1;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.#waiting.indexOf(wake);
        if (index >= 0) this.#waiting.splice(index, 1);
        reject(signal?.reason);
      };
      const wake = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(wake);
    });
  }

  /** Frees a slot, handing it straight to the longest waiter if there is one. */
  give(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next();
    else this.#free = Math.min(this.size, this.#free + 1);
  }

  /**
   * Releases every waiter without a slot, for a connection that closed: each then finds the
   * connection closed and fails.
   */
  wakeAll(): void {
    for (const wake of this.#waiting.splice(0)) {
      this.#free -= 1;
      wake();
    }
  }
}

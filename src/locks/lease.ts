/**
 * Lease renewal of a job that holds its VM lock and host slots.
 *
 * INVARIANTS
 * - While the keeper runs, a renewal is sent every `renewEveryMs`, never two at once.
 * - The lease counts as lost as soon as a renewal reply reports it gone (expired, superseded
 *   by a takeover, missing), or when no renewal has succeeded for `renewalDeadlineMs`, half
 *   the lease. The
 *   lease was renewed at the earliest when the last successful request was sent, so by then
 *   at least half of it is still left on Redis's clock: time to stop the migration before
 *   another job can be granted the slot.
 * - onLost runs at most once, and never after stop().
 */
import type { Logger } from 'pino';

import { FerryError } from '../errors.js';
import type { MigrationStatus, ObservedPlacement } from '../types.js';
import type { CompiledLockOptions } from './options.js';
import type { LockStore } from './store.js';
import { withTimeout } from './wait.js';

export class LeaseKeeper {
  #confirmedAt: number;
  #timer: NodeJS.Timeout | undefined;
  #renewing = false;
  #stopped = false;

  /**
   * @param confirmedAt performance.now() when the request that last set the lease was sent.
   */
  constructor(
    private readonly store: LockStore,
    private readonly jobId: string,
    private readonly token: string,
    private readonly options: CompiledLockOptions,
    private readonly logger: Logger,
    private readonly onLost: (error: FerryError) => void,
    confirmedAt: number,
  ) {
    this.#confirmedAt = confirmedAt;
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), this.options.renewEveryMs);
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  #tick(): void {
    if (this.#stopped) return;
    const silentMs = performance.now() - this.#confirmedAt;
    if (silentMs > this.options.renewalDeadlineMs) {
      this.#lose(`no renewal succeeded for ${Math.round(silentMs)} ms`);
      return;
    }
    if (this.#renewing) return;
    this.#renewing = true;
    void this.#renew().finally(() => {
      this.#renewing = false;
    });
  }

  async #renew(): Promise<void> {
    const sentAt = performance.now();
    try {
      const reply = await withTimeout(
        this.store.renew(this.jobId, this.token, this.options.leaseMs),
        this.options.renewEveryMs,
        'Lease renewal',
      );
      if (reply.renewed) {
        this.#confirmedAt = sentAt;
        return;
      }
      const detail = reply.resource === undefined ? '' : ` (${reply.resource})`;
      this.#lose(`Redis reports the lease ${reply.reason ?? 'lost'}${detail}`);
    } catch (error) {
      // Retried at the next tick, until the renewal deadline passes.
      this.logger.warn({ err: error, jobId: this.jobId }, 'Lease renewal failed; retrying');
    }
  }

  #lose(reason: string): void {
    if (this.#stopped) return;
    this.stop();
    const error = new FerryError(
      'LEASE_LOST',
      `The lease on the VM lock and host slots of job ${this.jobId} was lost (${reason}); another migration may now use these hosts.`,
      { context: { jobId: this.jobId, reason } },
    );
    this.logger.error({ err: error, jobId: this.jobId, reason }, 'Lease lost; aborting the migration');
    this.onLost(error);
  }
}

/**
 * Returns the final status of a job whose attempt ended with LEASE_LOST. It is `failed` only
 * when the attempt observed the VM running on the source, absent from the target and nothing
 * else in flight, because then nothing moved. Otherwise the outcome is not proven, so it is
 * `needs-attention`.
 */
export function statusAfterLeaseLoss(observed: unknown, source: string, target: string): MigrationStatus {
  const seen = Array.isArray(observed) ? (observed as ObservedPlacement[]) : [];
  const onSource = seen.filter((placement) => placement.host === source);
  const onTarget = seen.filter((placement) => placement.host === target);
  const provenOnSource =
    seen.length === 2 &&
    onSource.length === 1 &&
    onSource[0]?.state === 'running' &&
    onTarget.length === 1 &&
    onTarget[0]?.state === 'absent';
  return provenOnSource ? 'failed' : 'needs-attention';
}

/**
 * Convergence and stall decisions for one running QEMU migration, kept free of I/O so that
 * they can be tested alone. The driver feeds every `query-migrate` reading to `observe` and
 * carries out what it returns.
 *
 * Convergence: QEMU completes a pre-copy migration once the memory still dirty can be sent
 * within the downtime limit. A guest that dirties memory faster than the bandwidth allows never
 * gets there. So, as OpenStack Nova and Proxmox do, the limit is raised in equal steps from the
 * first limit towards the maximum, one step after every `passesPerStep` passes over memory
 * without completing. Once the maximum has been tried for `passesPerStep` passes, the
 * migration is given up.
 *
 * Stall: a migration that sends no byte for `stallTimeoutMs` is given up too. QEMU itself never
 * times out a stream that stopped moving without closing.
 */

export interface ConvergencePolicyOptions {
  /** Downtime limit the migration starts with, in ms. */
  downtimeLimitMs: number;
  /** Highest downtime limit, in ms. */
  maxDowntimeLimitMs: number;
  /** Equal steps from downtimeLimitMs to maxDowntimeLimitMs; 0 keeps the first limit. */
  downtimeSteps: number;
  /** Memory passes (QEMU's dirty-sync-count) between raises, and at the maximum before giving up. */
  passesPerStep: number;
  stallTimeoutMs: number;
}

/** One reading of an active migration. */
export interface MigrationReading {
  /** Milliseconds on a monotonic clock. */
  atMs: number;
  transferredBytes: number;
  /** QEMU's dirty-sync-count: 1 at the start, one more after each pass over memory. */
  passes: number;
}

export type ConvergenceAction =
  | { kind: 'continue' }
  | { kind: 'raise-downtime'; downtimeLimitMs: number; step: number }
  | { kind: 'give-up'; reason: 'not-converging' | 'stalled'; detail: string };

export class ConvergencePolicy {
  readonly #options: ConvergencePolicyOptions;
  #step = 0;
  #passesAtLastStep: number | undefined;
  #lastTransferred = -1;
  #lastProgressAtMs = 0;

  constructor(options: ConvergencePolicyOptions) {
    this.#options = options;
  }

  /** The downtime limit in force, in ms. */
  get downtimeLimitMs(): number {
    const { downtimeLimitMs, maxDowntimeLimitMs, downtimeSteps } = this.#options;
    if (downtimeSteps === 0 || this.#step === 0) return downtimeLimitMs;
    const raised = downtimeLimitMs + ((maxDowntimeLimitMs - downtimeLimitMs) * this.#step) / downtimeSteps;
    return Math.round(raised);
  }

  /** Decides what to do after one reading of a migration in QEMU's `active` status. */
  observe(reading: MigrationReading): ConvergenceAction {
    if (reading.transferredBytes > this.#lastTransferred) {
      this.#lastTransferred = reading.transferredBytes;
      this.#lastProgressAtMs = reading.atMs;
    } else if (reading.atMs - this.#lastProgressAtMs >= this.#options.stallTimeoutMs) {
      return {
        kind: 'give-up',
        reason: 'stalled',
        detail: `no byte was sent for ${Math.round((reading.atMs - this.#lastProgressAtMs) / 1000)} s`,
      };
    }

    this.#passesAtLastStep ??= reading.passes;
    if (reading.passes - this.#passesAtLastStep < this.#options.passesPerStep) return { kind: 'continue' };

    this.#passesAtLastStep = reading.passes;
    if (this.#step < this.#options.downtimeSteps) {
      this.#step += 1;
      return { kind: 'raise-downtime', downtimeLimitMs: this.downtimeLimitMs, step: this.#step };
    }
    return {
      kind: 'give-up',
      reason: 'not-converging',
      detail:
        `still not converged after ${reading.passes} passes over memory, the last ${this.#options.passesPerStep} ` +
        `at the maximum downtime limit of ${this.downtimeLimitMs} ms`,
    };
  }
}

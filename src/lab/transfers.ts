import { appendFileSync } from 'node:fs';

/** Outcome of one transfer as the lab saw it. */
export type TransferOutcome = 'completed' | 'failed' | 'rejected';

/** One migration stream between two lab hosts, as recorded by the simulator. */
export interface TransferRecord {
  vm: string;
  source: string;
  target: string;
  /** Epoch milliseconds when the source started sending. */
  start: number;
  /** Epoch milliseconds when the transfer ended, either way. */
  end: number;
  outcome: TransferOutcome;
  /** Bytes the target received. */
  bytes: number;
  /** Short reason for a failed or rejected transfer. */
  detail?: string;
}

/**
 * The lab's record of every transfer, kept in memory for tests and benchmarks and appended as
 * JSON lines to a file when a path is given, so that other processes can read it too.
 */
export class TransferLog {
  readonly #records: TransferRecord[] = [];

  constructor(readonly path?: string) {}

  add(record: TransferRecord): void {
    this.#records.push(record);
    if (this.path !== undefined) appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }

  all(): TransferRecord[] {
    return [...this.#records];
  }
}

/**
 * Records the time of every command ferry runs on a host (SshConnection.exec), so that a
 * benchmark can tell ferry's own time from the time spent inside the lab's commands.
 *
 * The worker under test runs in this process, so a wrapper on the class prototype records
 * each command from the moment ferry requests a session until its exit status arrived.
 * That interval contains sshd starting the session, the shell, and the simulated xm.
 */
import { SshConnection } from '../../src/ssh/connection.js';
import type { Interval } from './stats.js';

export interface ExecRecord extends Interval {
  host: string;
  argv: readonly string[];
}

type Exec = SshConnection['exec'];

export class ExecRecorder {
  readonly records: ExecRecord[] = [];
  #original: Exec | undefined;

  /** Starts recording; stop() must follow, also when the benchmark fails. */
  start(): void {
    if (this.#original !== undefined) return;
    const original = SshConnection.prototype.exec;
    this.#original = original;
    const records = this.records;
    SshConnection.prototype.exec = async function (this: SshConnection, argv, options) {
      const start = Date.now();
      try {
        return await original.call(this, argv, options);
      } finally {
        records.push({ start, end: Date.now(), host: this.target.name, argv });
      }
    };
  }

  stop(): void {
    if (this.#original === undefined) return;
    SshConnection.prototype.exec = this.#original;
    this.#original = undefined;
  }
}

/** True for ferry's wait on a detached command, which polls on the host until the command exits. */
export function isDetachedWait(record: ExecRecord): boolean {
  return record.argv.includes('ferry-wait');
}

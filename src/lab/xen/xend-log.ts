import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';

export type XendLogLevel = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR';

/** Writes one xend.log line; `component` plays the part of xend's Python module name. */
export type XendLogger = (level: XendLogLevel, component: string, message: string) => void;

function timestamp(date: Date): string {
  const two = (value: number): string => String(value).padStart(2, '0');
  const day = `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}`;
  return `${day} ${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}

/**
 * A host's xend.log, in xend's line layout: `[local time pid] LEVEL (component) message`. Every
 * line also goes to `forward` with the host name in front. Once closed, writes are dropped, so
 * that a test may delete the folder right after stopping the simulator.
 */
export class XendLogFile {
  #closed = false;
  #failed = false;

  constructor(
    readonly path: string,
    private readonly hostName: string,
    private readonly forward: (line: string) => void,
  ) {
    writeFileSync(path, '', { mode: 0o644 });
  }

  readonly write: XendLogger = (level, component, message) => {
    if (this.#closed) return;
    const line = `[${timestamp(new Date())} ${process.pid}] ${level} (${component}) ${message}`;
    this.forward(`[${this.hostName}] ${line}`);
    try {
      appendFileSync(this.path, `${line}\n`);
    } catch (error) {
      // Report a lost log file once instead of on every line.
      if (!this.#failed) this.forward(`[${this.hostName}] cannot append to ${this.path}: ${String(error)}`);
      this.#failed = true;
    }
  };

  read(): string {
    try {
      return readFileSync(this.path, 'utf8');
    } catch {
      return '';
    }
  }

  close(): void {
    this.#closed = true;
  }
}

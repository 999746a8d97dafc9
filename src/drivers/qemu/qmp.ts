/**
 * A client of QEMU's machine protocol (QMP) over any byte stream, here an SSH channel to the
 * monitor's unix socket on a host. QMP sends one JSON object per line: a greeting first, then
 * one reply per command (`return` or `error`, echoing the command's `id`) and asynchronous
 * `event` objects in between. Commands stay refused until `qmp_capabilities` has been sent,
 * which open() does.
 */

import type { Duplex } from 'node:stream';

import { FerryError } from '../../errors.js';

/** Error object of a failed QMP command, as QEMU sends it. */
export interface QmpErrorReply {
  class: string;
  desc: string;
}

/** An asynchronous QMP event, such as MIGRATION or STOP. */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpClientOptions {
  /** Host name for error messages and context. */
  host: string;
  /** The monitor socket path on the host, for error messages. */
  socketPath: string;
  /**
   * Milliseconds to wait for the greeting and for each reply.
   * @defaultValue 10000 (10 s)
   */
  timeoutMs?: number;
}

/** A failed QMP command: QEMU's error class and description, and the command that failed. */
export class QmpCommandError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly description: string,
  ) {
    super(`QMP command '${command}' failed: ${description} (${errorClass}).`);
    this.name = 'QmpCommandError';
  }
}

interface PendingCommand {
  command: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** Maximum length of one QMP line; QEMU's replies here are a few KiB at most. */
const maxLineBytes = 1024 * 1024;

export class QmpClient {
  readonly #stream: Duplex;
  readonly #options: Required<QmpClientOptions>;
  readonly #pending = new Map<number, PendingCommand>();
  readonly #eventListeners = new Set<(event: QmpEvent) => void>();
  #buffer = '';
  #nextId = 1;
  #closed = false;
  #closeError: FerryError | undefined;
  #greetingWaiter: { resolve(): void; reject(error: Error): void } | undefined;

  private constructor(stream: Duplex, options: QmpClientOptions) {
    this.#stream = stream;
    this.#options = { timeoutMs: 10_000, ...options };
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => this.#onData(chunk));
    stream.on('error', (error: Error) => this.#fail(this.#lostError(error)));
    stream.on('close', () => this.#fail(this.#lostError()));
    stream.on('end', () => this.#fail(this.#lostError()));
  }

  /**
   * Reads the greeting on `stream` and leaves capabilities negotiation mode. Throws
   * MONITOR_UNAVAILABLE when no greeting arrives within the timeout, which is also what a
   * monitor busy with another client looks like: QEMU serves one client per QMP socket.
   */
  static async open(stream: Duplex, options: QmpClientOptions): Promise<QmpClient> {
    const client = new QmpClient(stream, options);
    try {
      await client.#greeting();
      await client.execute('qmp_capabilities');
      return client;
    } catch (error) {
      client.close();
      throw error;
    }
  }

  /** True once the stream has ended or close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Runs one command and resolves with its `return` value. Rejects with QmpCommandError when
   * QEMU returns an error, and with MONITOR_UNAVAILABLE when the stream breaks or no
   * reply arrives within `timeoutMs`.
   */
  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    options: { timeoutMs?: number } = {},
  ): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closeError ?? this.#lostError());
    const id = this.#nextId++;
    const timeoutMs = options.timeoutMs ?? this.#options.timeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          this.#error(`QEMU did not answer the QMP command '${command}' within ${timeoutMs} ms`, {
            command,
            timeoutMs,
          }),
        );
      }, timeoutMs);
      this.#pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject, timer });
      const message = { execute: command, ...(args === undefined ? {} : { arguments: args }), id };
      this.#stream.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Calls `listener` for every event until the returned function is called. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  /** Ends the stream; commands still waiting reject with MONITOR_UNAVAILABLE. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#fail(this.#error('The QMP connection was closed by ferry'));
    this.#stream.end();
    this.#stream.destroy();
  }

  #greeting(): Promise<void> {
    const timeoutMs = this.#options.timeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#greetingWaiter = undefined;
        reject(
          this.#error(
            `No QMP greeting within ${timeoutMs} ms; another client may be connected to the monitor`,
            { timeoutMs },
          ),
        );
      }, timeoutMs);
      this.#greetingWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    if (this.#buffer.length > maxLineBytes) {
      this.#fail(this.#error(`A QMP message exceeded ${maxLineBytes} bytes`));
      this.#stream.destroy();
      return;
    }
    let newline = this.#buffer.indexOf('\n');
    while (newline >= 0) {
      const line = this.#buffer.slice(0, newline).trim();
      this.#buffer = this.#buffer.slice(newline + 1);
      if (line !== '') this.#onMessage(line);
      newline = this.#buffer.indexOf('\n');
    }
  }

  #onMessage(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.#fail(this.#error(`QEMU sent a QMP line that is not JSON: ${line.slice(0, 200)}`));
      this.#stream.destroy();
      return;
    }

    if ('QMP' in message) {
      this.#greetingWaiter?.resolve();
      this.#greetingWaiter = undefined;
      return;
    }
    if (typeof message.event === 'string') {
      for (const listener of this.#eventListeners) listener(message as unknown as QmpEvent);
      return;
    }
    const id = typeof message.id === 'number' ? message.id : undefined;
    const pending = id === undefined ? undefined : this.#pending.get(id);
    // A reply without a known id belongs to a command that already timed out.
    if (id === undefined || pending === undefined) return;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if ('error' in message) {
      const error = message.error as Partial<QmpErrorReply>;
      pending.reject(
        new QmpCommandError(pending.command, error.class ?? 'GenericError', error.desc ?? 'no description'),
      );
      return;
    }
    pending.resolve(message.return);
  }

  #fail(error: FerryError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeError = error;
    this.#greetingWaiter?.reject(error);
    this.#greetingWaiter = undefined;
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.#pending.clear();
  }

  #lostError(cause?: Error): FerryError {
    const detail = cause === undefined ? '' : `: ${cause.message}`;
    return this.#error(`The QMP connection ended${detail}`, {}, cause);
  }

  #error(message: string, context: Record<string, unknown> = {}, cause?: unknown): FerryError {
    const { host, socketPath } = this.#options;
    return new FerryError('MONITOR_UNAVAILABLE', `${message} (monitor ${socketPath} on ${host}).`, {
      context: { host, socketPath, ...context },
      cause,
    });
  }
}

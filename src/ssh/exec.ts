/**
 * Collection of one exec channel's output and exit status into an ExecResult.
 */

import type { ClientChannel } from 'ssh2';

import { FerryError } from '../errors.js';
import { shellCommand } from './quote.js';

export interface ExecOptions {
  /** Written to the command's stdin, which is then closed. By default stdin is closed at once. */
  stdin?: string | Buffer;
  /**
   * Milliseconds the command may run, counted from the call. After it exec throws SSH_TIMEOUT
   * and closes the channel. By default there is no limit.
   */
  timeoutMs?: number;
  /** Aborts the command like the timeout does; exec then throws `signal.reason`. */
  signal?: AbortSignal;
  /**
   * Exit codes that count as success. When given, any other exit (or death by a signal)
   * throws COMMAND_FAILED; when absent, exec returns whatever the exit status was.
   */
  okCodes?: readonly number[];
  /**
   * Bytes of stdout, and separately of stderr, that exec keeps; a command that writes more is
   * stopped and exec throws COMMAND_FAILED.
   * @defaultValue 16 MiB
   */
  maxOutputBytes?: number;
}

export interface ExecResult extends ExitStatus {
  stdout: string;
  stderr: string;
}

/** Exit code or signal of a finished remote command. */
export interface ExitStatus {
  /** Exit status, or null when the command was killed by a signal. */
  code: number | null;
  /** Name of the signal that killed the command (`SIGKILL`), or null. */
  signal: string | null;
}

/**
 * An exec channel with its exit status. ssh2 emits 'exit' as soon as the packet arrives, which
 * for a short command can be before the caller had a chance to listen, so the status is
 * recorded when the channel opens.
 */
export type SessionChannel = ClientChannel & {
  /** Resolves with the exit status, or with undefined when the channel closed without one. */
  readonly exitStatus: Promise<ExitStatus | undefined>;
};

/** Starts recording a freshly opened channel's exit status; call it before the next event-loop turn. */
export function withExitStatus(channel: ClientChannel): SessionChannel {
  const exitStatus = new Promise<ExitStatus | undefined>((resolve) => {
    channel.once('exit', (code: number | null, signalName?: string) => {
      // ssh2 reports signals with the SIG prefix already (`SIGKILL`).
      resolve({ code: typeof code === 'number' ? code : null, signal: signalName ?? null });
    });
    channel.once('close', () => resolve(undefined));
  });
  return Object.assign(channel, { exitStatus });
}

export interface CollectOptions {
  argv: readonly string[];
  host: string;
  stdin?: string | Buffer | undefined;
  okCodes?: readonly number[] | undefined;
  maxOutputBytes?: number | undefined;
  signal?: AbortSignal | undefined;
  /** The error to throw once `signal` has aborted. */
  abortReason: () => unknown;
  /** The error to throw when the channel closes without an exit status. */
  lostChannel: () => FerryError;
}

const defaultMaxOutputBytes = 16 * 1024 * 1024;

/** Gathers a started exec channel's output and resolves on its close. */
export function collectExec(channel: SessionChannel, options: CollectOptions): Promise<ExecResult> {
  const maxOutputBytes = options.maxOutputBytes ?? defaultMaxOutputBytes;
  const stdout = new OutputBuffer(maxOutputBytes);
  const stderr = new OutputBuffer(maxOutputBytes);

  return new Promise<ExecResult>((resolve, reject) => {
    let settled = false;
    const settle = (error: unknown, result?: ExecResult): void => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      if (result !== undefined) resolve(result);
      else reject(error);
    };
    const stop = (error: unknown): void => {
      if (settled) return;
      settle(error);
      stopChannel(channel);
    };
    const onAbort = (): void => stop(options.abortReason());
    const onOverflow = (): void =>
      stop(
        new FerryError(
          'COMMAND_FAILED',
          `Command '${options.argv[0] ?? ''}' on '${options.host}' wrote more than ${maxOutputBytes} bytes of output; it was stopped.`,
          { context: { host: options.host, maxOutputBytes } },
        ),
      );

    channel.on('data', (chunk: Buffer) => {
      if (!stdout.add(chunk)) onOverflow();
    });
    channel.stderr.on('data', (chunk: Buffer) => {
      if (!stderr.add(chunk)) onOverflow();
    });
    channel.on('error', (error: Error) =>
      stop(options.lostChannel().withContext({ channelError: error.message })),
    );
    channel.on('close', () => {
      // The exit packet precedes the close, so exitStatus is already settled here.
      void channel.exitStatus.then((exit) => {
        if (exit === undefined) {
          settle(options.lostChannel());
          return;
        }
        const result: ExecResult = { stdout: stdout.text(), stderr: stderr.text(), ...exit };
        const accepted =
          options.okCodes === undefined || (result.code !== null && options.okCodes.includes(result.code));
        settle(accepted ? undefined : commandFailed(options, result), accepted ? result : undefined);
      });
    });

    if (options.signal?.aborted === true) {
      onAbort();
      return;
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.stdin === undefined) channel.end();
    else channel.end(options.stdin);
  });
}

/** Builds the COMMAND_FAILED error for an exit that okCodes leaves out. */
function commandFailed(options: CollectOptions, result: ExecResult): FerryError {
  const command = shellCommand(options.argv);
  const preview = command.length > 200 ? `${command.slice(0, 200)}...` : command;
  const status =
    result.code === null ? `was killed by ${result.signal ?? 'a signal'}` : `exited with code ${result.code}`;
  const stderrTail = result.stderr.trim().slice(-500);
  return new FerryError(
    'COMMAND_FAILED',
    `Command ${preview} on '${options.host}' ${status}${stderrTail === '' ? '' : `: ${stderrTail}`}`,
    { context: { host: options.host, exitCode: result.code, exitSignal: result.signal } },
  );
}

/**
 * Stops a channel's command: SIGKILL through a signal request, then a channel close. OpenSSH
 * 9.2's sshd delivers the signal. A server that ignores it leaves only the close, and then a
 * command that neither reads stdin nor writes output keeps running.
 */
export function stopChannel(channel: ClientChannel): void {
  sendSignal(channel, 'KILL');
  // Keep reading, so ssh2 can deliver the end of the stream and emit 'close'.
  channel.resume();
  channel.stderr.resume();
  channel.close();
}

/** The ssh2 1.x internals that sendSignal reaches into. */
interface ChannelInternals {
  outgoing?: { id?: number; state?: string };
  _client?: { _protocol?: { signal?: (channelId: number, name: string) => void } };
}

/**
 * Sends a signal request on a session channel. ssh2's public `channel.signal()` does nothing
 * once stdin is ended (it checks `writable`), and exec always ends stdin. So this calls the
 * protocol layer directly, because the SSH protocol allows channel requests after EOF.
 * NOTE: relies on ssh2 1.x private fields and does nothing if they are missing.
 */
export function sendSignal(channel: ClientChannel, name: string): void {
  const internals = channel as unknown as ChannelInternals;
  const id = internals.outgoing?.id;
  const state = internals.outgoing?.state;
  const protocol = internals._client?._protocol;
  if (id === undefined || protocol?.signal === undefined || (state !== 'open' && state !== 'eof')) return;
  try {
    protocol.signal(id, name);
  } catch {
    // The connection is already gone; closing the channel is all that is left to do.
  }
}

/** Chunks of one output stream, up to a byte limit. */
class OutputBuffer {
  readonly #chunks: Buffer[] = [];
  #size = 0;

  constructor(readonly limit: number) {}

  /** Stores a chunk; returns false once the limit is exceeded. */
  add(chunk: Buffer): boolean {
    this.#size += chunk.length;
    if (this.#size > this.limit) return false;
    this.#chunks.push(chunk);
    return true;
  }

  text(): string {
    return Buffer.concat(this.#chunks, Math.min(this.#size, this.limit)).toString('utf8');
  }
}

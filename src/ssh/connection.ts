/**
 * One authenticated SSH connection to a host, wrapping an ssh2 Client. Host keys are checked
 * against the target's pin during key exchange, so a wrong or unknown key ends the handshake
 * before authentication and no command can run. Every ssh2 error leaves the SSH layer as a
 * FerryError with the original as `cause`.
 */

import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

import type { Client, ClientChannel, TcpConnectionDetails } from 'ssh2';

import { FerryError } from '../errors.js';
import { disconnectError, forwardOutError, type Ssh2Error } from './connect-errors.js';
import {
  collectExec,
  withExitStatus,
  type ExecOptions,
  type ExecResult,
  type SessionChannel,
} from './exec.js';
import { handshake } from './handshake.js';
import { loadHostKeyPin } from './host-key.js';
import { loadCredentials } from './identity.js';
import {
  compileConnectOptions,
  positiveInteger,
  type CompiledConnectOptions,
  type ConnectOptions,
} from './options.js';
import { shellCommand } from './quote.js';
import { SessionSlots } from './session-slots.js';
import type { SshTarget } from './target.js';

export type { ConnectOptions } from './options.js';
export type { SshTarget } from './target.js';
export type { ExecOptions, ExecResult, ExitStatus, SessionChannel } from './exec.js';

/** Delays before retrying a session that sshd rejected; about 4 s in total. */
const sessionRetryDelaysMs = [25, 50, 100, 200, 400, 800, 1000, 1500];

/** Handler for a connection arriving on a remote listener; it must call accept or reject. */
export type IncomingConnectionHandler = (
  details: TcpConnectionDetails,
  accept: () => ClientChannel,
  reject: () => void,
) => void;

/** A listening socket that sshd opened on the host for this connection (a remote forward). */
export interface RemoteListener {
  address: string;
  /** The port sshd bound, also when port 0 was requested. */
  port: number;
  /** Asks sshd to stop listening; resolves once it has, or at once if the connection is gone. */
  close(): Promise<void>;
}

export interface SshConnectionEvents {
  /** The connection ended; `reason` is undefined when close() or destroy() ended it. */
  close: [reason: FerryError | undefined];
}

export class SshConnection extends EventEmitter<SshConnectionEvents> {
  readonly #client: Client;
  readonly #options: CompiledConnectOptions;
  readonly #sessions: SessionSlots;
  readonly #listeners = new Map<string, IncomingConnectionHandler>();
  #closed = false;
  #closeRequested = false;
  #closeReason: FerryError | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    client: Client,
    readonly target: Readonly<SshTarget>,
    options: CompiledConnectOptions,
    /** Cipher the key exchange chose for data sent to the host, as SSH names it. */
    readonly cipher: string | undefined,
  ) {
    super();
    this.#client = client;
    this.#options = options;
    this.#sessions = new SessionSlots(options.maxSessions);

    client.on('error', (error: Ssh2Error) => {
      if (this.#closeRequested) return;
      const keepalive = `${this.#options.keepaliveIntervalMs * this.#options.keepaliveCountMax} ms`;
      this.#closeReason ??= disconnectError(error, target, keepalive);
    });
    client.on('close', () => this.#onClose());
    // ssh2 emits every forwarded connection on the client, whichever forwardIn asked for it,
    // so one dispatcher routes them by the address and port that sshd accepted them on.
    client.on('tcp connection', (details, accept, reject) => {
      const handler = this.#listeners.get(`${details.destIP}:${details.destPort}`);
      if (handler === undefined) reject();
      else handler(details, accept, reject);
    });
  }

  /**
   * Connects and authenticates.
   * - HOST_KEY_MISMATCH or HOST_KEY_UNKNOWN: the presented host key is not pinned.
   * - AUTH_FAILED: the host accepts no credential, or the identity file is unusable.
   * - SSH_CONNECT_FAILED: the host cannot be reached.
   * - SSH_TIMEOUT: the handshake takes longer than readyTimeoutMs.
   * - `signal.reason`: the signal aborted.
   */
  static async connect(target: SshTarget, options: ConnectOptions = {}): Promise<SshConnection> {
    const compiled = compileConnectOptions(options);
    const credentials = await loadCredentials(target);
    const pin = await loadHostKeyPin(target);
    options.signal?.throwIfAborted();

    const { client, cipher } = await handshake(target, compiled, credentials, pin, options.signal);
    return new SshConnection(client, target, compiled, cipher);
  }

  /** True once close() or destroy() was called or the connection ended; no new work starts then. */
  get closed(): boolean {
    return this.#closed || this.#closeRequested;
  }

  /** The error that ended the connection, when it ended by itself. */
  get closeReason(): FerryError | undefined {
    return this.#closeReason;
  }

  /** Sessions (exec channels) open now. */
  get openSessions(): number {
    return this.#sessions.inUse;
  }

  /**
   * Runs a command without a pty and collects its output. A non-zero exit is returned, not
   * thrown, unless `okCodes` is given and leaves it out (then COMMAND_FAILED). Throws
   * SSH_DISCONNECTED when the channel or connection breaks, SSH_TIMEOUT after `timeoutMs`,
   * and `signal.reason` when aborted.
   */
  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const program = argv[0] ?? '';
    const timeoutMs =
      options.timeoutMs === undefined ? undefined : positiveInteger('timeoutMs', options.timeoutMs, 0);
    const timeout = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
    const signals = [options.signal, timeout].filter((signal): signal is AbortSignal => signal !== undefined);
    const signal = signals.length > 0 ? AbortSignal.any(signals) : undefined;
    // The caller's reason when the caller aborted, SSH_TIMEOUT when the timeout fired.
    const abortReason = (): unknown =>
      options.signal?.aborted === true
        ? options.signal.reason
        : new FerryError(
            'SSH_TIMEOUT',
            `Command '${program}' on '${this.target.name}' did not finish within ${timeoutMs} ms.`,
            {
              context: { host: this.target.name, timeoutMs },
            },
          );

    let channel: SessionChannel;
    try {
      channel = await this.#openSession(argv, signal);
    } catch (error) {
      throw signal?.aborted === true ? abortReason() : error;
    }
    return collectExec(channel, {
      argv,
      host: this.target.name,
      okCodes: options.okCodes,
      stdin: options.stdin,
      maxOutputBytes: options.maxOutputBytes,
      signal,
      abortReason,
      lostChannel: () => this.#channelError(`finish '${program}'`),
    });
  }

  /**
   * Starts a long-running command without a pty and returns its channel. stdout is the
   * channel's readable side, stderr is `channel.stderr`, stdin is its writable side, and
   * `exitStatus` resolves with the exit status. Ending the channel does not stop the remote
   * process, so the command itself must exit when its stdin reaches EOF.
   */
  async execStream(argv: readonly string[], options: { signal?: AbortSignal } = {}): Promise<SessionChannel> {
    return this.#openSession(argv, options.signal);
  }

  /**
   * Asks sshd to listen on `address:port` of the host (port 0: sshd picks one) and routes the
   * connections that arrive there to `handler`. Throws FORWARDING_PROHIBITED when sshd rejects
   * the request, which AllowTcpForwarding no (or local) and PermitListen cause.
   */
  async listen(address: string, port: number, handler: IncomingConnectionHandler): Promise<RemoteListener> {
    this.#assertOpen('open a remote listener');
    return new Promise<RemoteListener>((resolve, reject) => {
      try {
        this.#client.forwardIn(address, port, (error, boundPort) => {
          if (error !== undefined && error !== null) {
            reject(
              new FerryError(
                'FORWARDING_PROHIBITED',
                `sshd on '${this.target.name}' rejected the remote forward on ${address}:${port}; ` +
                  'check that its AllowTcpForwarding is yes (or remote) and that PermitListen allows it.',
                { context: { host: this.target.name, address, port }, cause: error },
              ),
            );
            return;
          }
          // Registered inside the callback, before ssh2 processes any later packet, so the
          // first incoming connection cannot arrive ahead of its handler.
          this.#listeners.set(`${address}:${boundPort}`, handler);
          resolve(this.#remoteListener(address, boundPort));
        });
      } catch (error) {
        reject(this.#channelError('open a remote listener', error));
      }
    });
  }

  /**
   * Opens a direct-tcpip channel: sshd on the host connects to `host:port` and the channel
   * carries that TCP stream. Throws FORWARDING_PROHIBITED or TUNNEL_FAILED when sshd rejects it.
   */
  async forwardOut(
    host: string,
    port: number,
    origin = { address: '127.0.0.1', port: 0 },
  ): Promise<ClientChannel> {
    this.#assertOpen('open a forwarded channel');
    return new Promise<ClientChannel>((resolve, reject) => {
      try {
        this.#client.forwardOut(origin.address, origin.port, host, port, (error, channel) => {
          if (error === undefined || error === null) resolve(channel);
          else if (this.closed) reject(this.#channelError('open a forwarded channel', error));
          else reject(forwardOutError(error as Ssh2Error, this.target, `${host}:${port}`));
        });
      } catch (error) {
        reject(this.#channelError('open a forwarded channel', error));
      }
    });
  }

  /**
   * Opens a channel to a unix socket on the host (OpenSSH's direct-streamlocal extension):
   * sshd connects to `path` as the login user and the channel carries that stream. Throws
   * FORWARDING_PROHIBITED when sshd rejects it administratively (AllowStreamLocalForwarding
   * no), and TUNNEL_FAILED when the connect fails, which is also how a missing socket shows.
   */
  async openUnixSocket(path: string): Promise<ClientChannel> {
    this.#assertOpen('open a unix socket channel');
    return new Promise<ClientChannel>((resolve, reject) => {
      try {
        this.#client.openssh_forwardOutStreamLocal(path, (error, channel) => {
          if (error === undefined || error === null) resolve(channel);
          else if (this.closed) reject(this.#channelError('open a unix socket channel', error));
          else if ((error as Ssh2Error).reason === 1) {
            reject(
              new FerryError(
                'FORWARDING_PROHIBITED',
                `sshd on '${this.target.name}' refused a channel to the unix socket ${path} (administratively prohibited); set AllowStreamLocalForwarding yes (or local) there.`,
                { context: { host: this.target.name, destination: path }, cause: error },
              ),
            );
          } else reject(forwardOutError(error as Ssh2Error, this.target, path));
        });
      } catch (error) {
        reject(this.#channelError('open a unix socket channel', error));
      }
    });
  }

  /** Ends the connection politely and resolves once its socket is closed; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closeRequested = true;
    this.#closing ??= new Promise<void>((resolve) => {
      this.once('close', () => resolve());
      this.#client.end();
      // A peer that never replies to the disconnect must not hold close() open.
      setTimeout(() => this.#client.destroy(), 2000).unref();
    });
    return this.#closing;
  }

  /** Drops the socket at once, without an SSH disconnect message, as a crash would. */
  destroy(): void {
    if (this.#closed) return;
    this.#closeRequested = true;
    this.#client.destroy();
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#closeRequested) {
      this.#closeReason ??= new FerryError(
        'SSH_DISCONNECTED',
        `SSH connection to '${this.target.name}' (${this.target.address}:${this.target.port}) was closed by the host or the network.`,
        { context: { host: this.target.name } },
      );
    }
    this.#listeners.clear();
    this.#sessions.wakeAll();
    this.emit('close', this.#closeRequested ? undefined : this.#closeReason);
  }

  /**
   * Takes a session slot and opens an exec channel; the slot is freed when the channel closes.
   * sshd rejects a session open while it is at MaxSessions, which happens when its limit is
   * below maxSessions and also for a moment after a session closed (sshd frees the slot only
   * after it processed the close). Such rejections are retried with growing delays.
   */
  async #openSession(argv: readonly string[], signal: AbortSignal | undefined): Promise<SessionChannel> {
    const command = shellCommand(argv);
    const action = `run '${argv[0] ?? ''}'`;
    this.#assertOpen(action);
    await this.#sessions.take(signal);
    let channelHoldsSlot = false;
    try {
      for (let attempt = 0; ; attempt += 1) {
        if (this.closed) throw this.#closedError(action);
        signal?.throwIfAborted();
        const opened = await this.#execChannel(command);
        if (opened instanceof Error) {
          const rejectedByServer = (opened as Ssh2Error).reason !== undefined && !this.closed;
          const delayMs = sessionRetryDelaysMs[attempt];
          if (!rejectedByServer || delayMs === undefined) throw this.#channelError(action, opened);
          await sleep(delayMs, undefined, { signal });
          continue;
        }
        opened.once('close', () => this.#sessions.give());
        channelHoldsSlot = true;
        if (signal?.aborted === true) {
          opened.close();
          throw signal.reason;
        }
        return opened;
      }
    } catch (error) {
      if (!channelHoldsSlot) this.#sessions.give();
      throw signal?.aborted === true ? signal.reason : error;
    }
  }

  /** Opens an exec channel, resolving with the channel or the error ssh2 reported. */
  #execChannel(command: string): Promise<SessionChannel | Error> {
    return new Promise((resolve) => {
      try {
        // withExitStatus runs inside ssh2's callback, before ssh2 parses the packets after the
        // open confirmation, so an early exit status is not lost.
        this.#client.exec(command, (error, channel) => resolve(error ?? withExitStatus(channel)));
      } catch (error) {
        resolve(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  #remoteListener(address: string, port: number): RemoteListener {
    const key = `${address}:${port}`;
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => {
      closing ??= new Promise<void>((resolve, reject) => {
        this.#listeners.delete(key);
        if (this.closed) {
          resolve();
          return;
        }
        try {
          this.#client.unforwardIn(address, port, (error) => {
            // A connection that ended meanwhile took the listener with it.
            if (error === undefined || error === null || this.closed) resolve();
            else {
              reject(
                new FerryError(
                  'TUNNEL_FAILED',
                  `sshd on '${this.target.name}' did not stop listening on ${key}: ${error.message}.`,
                  {
                    context: { host: this.target.name, address, port },
                    cause: error,
                  },
                ),
              );
            }
          });
        } catch {
          resolve();
        }
      });
      return closing;
    };
    return { address, port, close };
  }

  #assertOpen(action: string): void {
    if (this.closed) throw this.#closedError(action);
  }

  /** The error for work requested on, or cut short by, a closed connection. */
  #closedError(action: string, cause?: unknown): FerryError {
    const reason =
      this.#closeReason === undefined ? '' : ` (${this.#closeReason.message.replace(/\.$/, '')})`;
    return new FerryError(
      'SSH_DISCONNECTED',
      `Cannot ${action}: the SSH connection to '${this.target.name}' (${this.target.address}:${this.target.port}) is closed${reason}.`,
      { context: { host: this.target.name }, cause: cause ?? this.#closeReason },
    );
  }

  /** The error for a channel that failed to open or broke while the connection stayed up. */
  #channelError(action: string, cause?: unknown): FerryError {
    if (this.closed) return this.#closedError(action, cause);
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    return new FerryError(
      'SSH_DISCONNECTED',
      `SSH channel to '${this.target.name}' failed while trying to ${action}${detail}.`,
      {
        context: { host: this.target.name },
        cause,
      },
    );
  }
}

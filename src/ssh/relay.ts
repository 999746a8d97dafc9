/**
 * Relay tunnels: the migration stream travels source host -> bastion -> target host over two
 * SSH connections that the bastion already holds.
 *
 * sshd on the source listens on its loopback (a remote forward). Every connection the
 * hypervisor makes there arrives on the bastion as a forwarded channel. The bastion then opens
 * a direct-tcpip channel to the relocation port on the target connection and splices the two.
 *
 * INVARIANTS
 * - Readiness is sshd's reply to the forward request. Nothing ever connects to the tunnel port
 *   to test it, because one connect-and-close can make a hypervisor that waits for a
 *   migration stream give up.
 * - Data moves with stream backpressure in both directions (pipe), so a slow side slows the
 *   other instead of filling memory. Per chunk, only counters change and byte listeners run.
 * - After close() resolves, sshd on the source no longer listens on the port, and every
 *   channel of the tunnel is closed (or its peer failed to confirm the close within 2 s).
 */

import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

import type { Logger } from 'pino';
import type { ClientChannel, TcpConnectionDetails } from 'ssh2';

import { FerryError, isFerryError } from '../errors.js';
import type { RemoteListener, SshConnection } from './connection.js';

/** Destination of a relay tunnel: a port on the target host's loopback. */
export interface RelayDestination {
  host: '127.0.0.1';
  port: number;
}

export interface RelayTunnelOptions {
  /** Receives the tunnel's lifecycle at debug and each rejected connection at warn. */
  logger?: Logger;
}

/** Called after each chunk with the running totals; it must be quick and must not throw. */
export type BytesListener = (bytesForward: number, bytesBack: number) => void;

export interface RelayTunnel {
  /** Port that sshd bound on the source host's 127.0.0.1. */
  readonly port: number;
  /** Bytes carried from the source host to the target host. */
  readonly bytesForward: number;
  /** Bytes carried from the target host back to the source host. */
  readonly bytesBack: number;
  /** Incoming connections that were spliced through to the target. */
  readonly connections: number;
  /** Incoming connections that were rejected because the target refused the channel. */
  readonly rejectedConnections: number;
  /** The latest failure of a connection through the tunnel, or of the tunnel itself. */
  readonly lastError: FerryError | undefined;
  /** Registers a byte listener; returns the function that removes it. */
  onBytes(listener: BytesListener): () => void;
  /** Stops the listener on the source and closes every channel; idempotent. */
  close(): Promise<void>;
}

/** The bind address of every relay listener: loopback only, never a routable interface. */
const bindAddress = '127.0.0.1';

/**
 * Opens a relay tunnel from `source` to `destination` on `target`. Throws
 * FORWARDING_PROHIBITED when the source's sshd rejects the remote forward, and
 * SSH_DISCONNECTED when either connection is closed.
 */
export async function openRelayTunnel(
  source: SshConnection,
  target: SshConnection,
  destination: RelayDestination,
  options: RelayTunnelOptions = {},
): Promise<RelayTunnel> {
  if (target.closed) {
    throw new FerryError(
      'SSH_DISCONNECTED',
      `Cannot open a relay tunnel: the connection to '${target.target.name}' is closed.`,
      {
        context: { host: target.target.name },
      },
    );
  }
  const tunnel = new Relay(source, target, destination, options.logger);
  await tunnel.start();
  return tunnel;
}

/** One forwarded connection: the channel from the source and the channel to the target. */
interface Splice {
  inbound: ClientChannel;
  outbound: ClientChannel;
  /** The channels of the two that have not emitted 'close' yet. */
  open: Set<ClientChannel>;
}

class Relay implements RelayTunnel {
  port = 0;
  bytesForward = 0;
  bytesBack = 0;
  connections = 0;
  rejectedConnections = 0;
  lastError: FerryError | undefined;

  readonly #splices = new Set<Splice>();
  readonly #byteListeners = new Set<BytesListener>();
  #listener: RemoteListener | undefined;
  #closing: Promise<void> | undefined;
  readonly #onSourceClose = (reason: FerryError | undefined): void => {
    this.#record(
      reason ??
        new FerryError(
          'SSH_DISCONNECTED',
          `The connection to '${this.source.target.name}' closed, and the tunnel with it.`,
          {
            context: { host: this.source.target.name },
          },
        ),
    );
  };

  constructor(
    readonly source: SshConnection,
    readonly target: SshConnection,
    readonly destination: RelayDestination,
    readonly logger: Logger | undefined,
  ) {}

  async start(): Promise<void> {
    this.#listener = await this.source.listen(bindAddress, 0, (details, accept, reject) =>
      this.#onIncoming(details, accept, reject),
    );
    this.port = this.#listener.port;
    this.source.once('close', this.#onSourceClose);
    this.logger?.debug(this.#fields(), 'Relay tunnel listening');
  }

  onBytes(listener: BytesListener): () => void {
    this.#byteListeners.add(listener);
    return () => this.#byteListeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.source.off('close', this.#onSourceClose);
    try {
      await this.#listener?.close();
    } finally {
      const closed: Array<Promise<unknown>> = [];
      for (const splice of this.#splices) {
        for (const channel of splice.open) {
          closed.push(once(channel, 'close').catch(() => undefined));
          closeChannel(channel);
        }
      }
      this.#splices.clear();
      if (closed.length > 0) await waitAtMost(Promise.all(closed), channelCloseWaitMs);
      this.logger?.debug(this.#fields(), 'Relay tunnel closed');
    }
  }

  #onIncoming(details: TcpConnectionDetails, accept: () => ClientChannel, reject: () => void): void {
    if (this.#closing !== undefined) {
      reject();
      return;
    }
    // The target channel opens first, so that a refusal rejects the incoming channel instead
    // of accepting it and closing it at once.
    this.target
      .forwardOut(this.destination.host, this.destination.port, {
        address: details.srcIP,
        port: details.srcPort,
      })
      .then(
        (outbound) => {
          if (this.#closing !== undefined) {
            reject();
            closeChannel(outbound);
            return;
          }
          this.connections += 1;
          this.#splice(accept(), outbound);
        },
        (error: unknown) => {
          reject();
          this.rejectedConnections += 1;
          this.#record(error);
        },
      );
  }

  #splice(inbound: ClientChannel, outbound: ClientChannel): void {
    const splice: Splice = { inbound, outbound, open: new Set([inbound, outbound]) };
    this.#splices.add(splice);

    inbound.on('data', (chunk: Buffer) => {
      this.bytesForward += chunk.length;
      this.#notify();
    });
    outbound.on('data', (chunk: Buffer) => {
      this.bytesBack += chunk.length;
      this.#notify();
    });
    // pipe() ends the other side's writable half when one side's readable half ends, and
    // pauses a side whose peer cannot take more data.
    inbound.pipe(outbound);
    outbound.pipe(inbound);

    const onError = (error: Error): void => {
      this.#record(
        new FerryError(
          'TUNNEL_FAILED',
          `A connection through the relay tunnel to '${this.target.target.name}' failed: ${error.message}.`,
          {
            context: { host: this.target.target.name, port: this.port },
            cause: error,
          },
        ),
      );
      closeChannel(inbound);
      closeChannel(outbound);
    };
    inbound.on('error', onError);
    outbound.on('error', onError);

    // When one side closes, the other gets its pending data delivered and is then closed too.
    // ssh2 never completes a write on a closed channel, so without this the pipe would stall.
    const onClose = (channel: ClientChannel, other: ClientChannel) => (): void => {
      splice.open.delete(channel);
      if (splice.open.size === 0) this.#splices.delete(splice);
      else closeAfterFlush(other);
    };
    inbound.once('close', onClose(inbound, outbound));
    outbound.once('close', onClose(outbound, inbound));
  }

  #notify(): void {
    if (this.#byteListeners.size === 0) return;
    for (const listener of this.#byteListeners) {
      try {
        listener(this.bytesForward, this.bytesBack);
      } catch (error) {
        this.#byteListeners.delete(listener);
        this.logger?.warn({ ...this.#fields(), err: error }, 'Relay byte listener threw and was removed');
      }
    }
  }

  #record(error: unknown): void {
    this.lastError = isFerryError(error)
      ? error
      : new FerryError('TUNNEL_FAILED', `Relay tunnel failure: ${String(error)}.`, { cause: error });
    this.logger?.warn({ ...this.#fields(), err: this.lastError }, 'Relay tunnel failure');
  }

  #fields(): Record<string, unknown> {
    return {
      source: this.source.target.name,
      target: this.target.target.name,
      port: this.port,
      destinationPort: this.destination.port,
      bytesForward: this.bytesForward,
      bytesBack: this.bytesBack,
    };
  }
}

/** Time close() waits for the peers to confirm that the tunnel's channels are closed. */
const channelCloseWaitMs = 2000;

/** Time a channel gets to deliver its pending writes after its peer closed. */
const flushGraceMs = 5000;

/** Waits for `promise` to settle, or for `timeoutMs`, whichever comes first. */
async function waitAtMost(promise: Promise<unknown>, timeoutMs: number): Promise<void> {
  const timer = new AbortController();
  await Promise.race([promise, sleep(timeoutMs, undefined, { signal: timer.signal }).catch(() => undefined)]);
  timer.abort();
}

/** Ends a channel's writes and closes it once they are delivered, or after flushGraceMs. */
function closeAfterFlush(channel: ClientChannel): void {
  if (channel.writableFinished) {
    closeChannel(channel);
    return;
  }
  const timer = setTimeout(() => closeChannel(channel), flushGraceMs);
  timer.unref();
  channel.once('finish', () => {
    clearTimeout(timer);
    closeChannel(channel);
  });
  channel.end();
}

/** Closes a channel now, draining what it still receives so that ssh2 can emit 'close'. */
function closeChannel(channel: ClientChannel): void {
  channel.unpipe();
  channel.resume();
  channel.close();
}

/**
 * A pool of SSH connections, one per target name, shared by every caller that works on that
 * host.
 *
 * INVARIANTS
 * - At most one connect attempt per target name runs at a time; concurrent acquires wait for it.
 * - A connection is reused only while its target's address, port, user, credentials and host
 *   key pin are unchanged. A connection with an outdated target is retired: no new lease gets
 *   it, and it closes once its last lease is released.
 * - A connection with no lease closes after idleTimeoutMs.
 * - After close() no connection stays open and acquire() rejects.
 */

import { FerryError } from '../errors.js';
import { SshConnection, type SshTarget } from './connection.js';
import { compileConnectOptions, positiveInteger, type ConnectOptions } from './options.js';

export interface SshPoolOptions {
  /**
   * Milliseconds a connection stays open after its last lease is released.
   * @defaultValue 60000 (60 s)
   */
  idleTimeoutMs?: number;
  /** Options for every connection the pool opens (the signal comes from each acquire). */
  connect?: Omit<ConnectOptions, 'signal'>;
}

/** A connection lent to one caller; release() hands it back and is idempotent. */
export interface SshLease {
  connection: SshConnection;
  release(): void;
}

interface PoolEntry {
  /** The target fields the connection was opened with, as a comparable string. */
  identity: string;
  connection?: SshConnection;
  connecting?: Promise<SshConnection>;
  leases: number;
  idleTimer?: NodeJS.Timeout;
}

export class SshPool {
  readonly #idleTimeoutMs: number;
  readonly #connectOptions: Omit<ConnectOptions, 'signal'>;
  readonly #entries = new Map<string, PoolEntry>();
  /** Entries replaced because their target changed, kept until their last lease is released. */
  readonly #retired = new Set<PoolEntry>();
  #handshakes = 0;
  #closed = false;

  constructor(options: SshPoolOptions = {}) {
    this.#idleTimeoutMs = positiveInteger('idleTimeoutMs', options.idleTimeoutMs, 60_000);
    compileConnectOptions(options.connect);
    this.#connectOptions = { ...options.connect };
  }

  /** SSH connections this pool has established so far (successful handshakes). */
  get handshakes(): number {
    return this.#handshakes;
  }

  /** Open connections, counting retired ones that still have leases. */
  get size(): number {
    let open = 0;
    for (const entry of [...this.#entries.values(), ...this.#retired]) {
      if (entry.connection !== undefined && !entry.connection.closed) open += 1;
    }
    return open;
  }

  /**
   * Lends the pooled connection of `target.name`, connecting first when there is none or it
   * has closed. Rejects with the errors of SshConnection.connect, with `signal.reason` when
   * this caller aborts (a connect shared with other callers goes on), and with
   * SSH_DISCONNECTED once the pool is closed.
   */
  async acquire(target: SshTarget, options: { signal?: AbortSignal } = {}): Promise<SshLease> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    const entry = this.#entryFor(target);

    // A lease is counted from the start, so the idle timer cannot close a connection that a
    // caller is about to receive.
    entry.leases += 1;
    this.#stopIdleTimer(entry);
    try {
      const connection = await withSignal(this.#connectionOf(entry, target), options.signal);
      this.#assertOpen();
      return this.#lease(entry, connection);
    } catch (error) {
      this.#releaseOne(entry);
      throw error;
    }
  }

  /** Closes every connection, leased or not; acquire() rejects afterwards. */
  async close(): Promise<void> {
    this.#closed = true;
    const entries = [...this.#entries.values(), ...this.#retired];
    this.#entries.clear();
    this.#retired.clear();
    await Promise.all(
      entries.map(async (entry) => {
        this.#stopIdleTimer(entry);
        const connection = entry.connection ?? (await entry.connecting?.catch(() => undefined));
        await connection?.close();
      }),
    );
  }

  #entryFor(target: SshTarget): PoolEntry {
    const identity = identityOf(target);
    const existing = this.#entries.get(target.name);
    if (existing !== undefined && existing.identity === identity) return existing;

    if (existing !== undefined) {
      // The target changed (new address, key pin or credentials): never hand out the old
      // connection again, but let current lease holders finish with it.
      this.#entries.delete(target.name);
      if (existing.leases > 0) this.#retired.add(existing);
      else this.#closeEntry(existing);
    }
    const entry: PoolEntry = { identity, leases: 0 };
    this.#entries.set(target.name, entry);
    return entry;
  }

  async #connectionOf(entry: PoolEntry, target: SshTarget): Promise<SshConnection> {
    if (entry.connection !== undefined && !entry.connection.closed) return entry.connection;
    entry.connection = undefined;
    entry.connecting ??= this.#connect(entry, target);
    return entry.connecting;
  }

  async #connect(entry: PoolEntry, target: SshTarget): Promise<SshConnection> {
    try {
      const connection = await SshConnection.connect(target, this.#connectOptions);
      this.#handshakes += 1;
      entry.connection = connection;
      connection.once('close', () => this.#onConnectionClose(entry, connection));
      if (this.#closed || !this.#isCurrent(entry)) {
        // The pool closed, or the target changed, while this connect ran.
        if (this.#closed || entry.leases === 0) await connection.close();
      }
      return connection;
    } finally {
      entry.connecting = undefined;
    }
  }

  #lease(entry: PoolEntry, connection: SshConnection): SshLease {
    let released = false;
    return {
      connection,
      release: () => {
        if (released) return;
        released = true;
        this.#releaseOne(entry);
      },
    };
  }

  #releaseOne(entry: PoolEntry): void {
    entry.leases -= 1;
    if (entry.leases > 0) return;
    if (this.#retired.has(entry)) {
      this.#retired.delete(entry);
      this.#closeEntry(entry);
      return;
    }
    if (entry.connection === undefined || entry.connection.closed) return;
    entry.idleTimer = setTimeout(() => {
      entry.idleTimer = undefined;
      if (entry.leases > 0) return;
      this.#deleteEntry(entry);
      this.#closeEntry(entry);
    }, this.#idleTimeoutMs);
    // An idle connection must not keep the process alive on its own account.
    entry.idleTimer.unref();
  }

  #onConnectionClose(entry: PoolEntry, connection: SshConnection): void {
    if (entry.connection !== connection) return;
    // The next acquire reconnects; current lease holders see SSH_DISCONNECTED from their calls.
    entry.connection = undefined;
    this.#stopIdleTimer(entry);
  }

  #closeEntry(entry: PoolEntry): void {
    this.#stopIdleTimer(entry);
    const connection = entry.connection;
    entry.connection = undefined;
    if (connection !== undefined) void connection.close();
  }

  #deleteEntry(entry: PoolEntry): void {
    for (const [name, candidate] of this.#entries) {
      if (candidate === entry) this.#entries.delete(name);
    }
  }

  #isCurrent(entry: PoolEntry): boolean {
    return [...this.#entries.values()].includes(entry);
  }

  #stopIdleTimer(entry: PoolEntry): void {
    if (entry.idleTimer === undefined) return;
    clearTimeout(entry.idleTimer);
    entry.idleTimer = undefined;
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new FerryError(
        'SSH_DISCONNECTED',
        'The SSH pool is closed; no new connections are lent after close().',
      );
    }
  }
}

/** Serializes the target fields a pooled connection depends on into one comparable string. */
function identityOf(target: SshTarget): string {
  return JSON.stringify([
    target.address,
    target.port,
    target.user,
    target.identityFile ?? null,
    target.agent ?? null,
    target.hostKey ?? null,
    target.knownHostsFile ?? null,
  ]);
}

/** Races a shared promise against one caller's signal without cancelling the shared work. */
async function withSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

import { randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NamesTable } from '../names.js';
import type { TransferLog, TransferOutcome } from '../transfers.js';
import { MIGRATING_PREFIX, type Domain, type DomainTable } from './domains.js';
import type { RelocationLedger } from './ledger.js';
import { ReplyWatcher, sendMemory } from './outgoing-stream.js';
import { writeWithBackpressure, type SocketSet } from './sockets.js';
import type { XmResult } from './types.js';
import { MIGRATION_FORMAT, encodeHeader } from './wire.js';
import type { XendLogger } from './xend-log.js';

/** The parts of a simulated host that send a migration. */
export interface OutgoingHost {
  readonly name: string;
  readonly address: string;
  readonly domainTable: DomainTable;
  /** Current sending rate limit in bytes per second; undefined means unlimited. */
  transferRate(): number | undefined;
  readonly dirtyShare: number;
  readonly log: XendLogger;
}

export interface MigrationEnvironment {
  names: NamesTable;
  ledger: RelocationLedger;
  transfers: TransferLog;
  sockets: SocketSet;
  bytesPerMiB: number;
  /** Aborted when the simulator stops. */
  signal: AbortSignal;
  /** Returns the lab host whose relocation server would accept connections at address:port, if any. */
  identifyHost(address: string, port: number): string | undefined;
}

export interface MigrateRequest {
  /** Domain name or id. */
  domain: string;
  /** Target host name or IPv4 address, resolved through the names table. */
  target: string;
  port: number;
  live: boolean;
}

const CONNECT_TIMEOUT_MS = 10_000;
// How long the sender waits for the receiver to finish its side before recording the transfer.
const SETTLE_TIMEOUT_MS = 5_000;

const failure = (message: string): XmResult => ({ stdout: '', stderr: `${message}\n`, code: 1 });

const ERRNO_TEXT: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  ETIMEDOUT: 'Connection timed out',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EHOSTUNREACH: 'No route to host',
};

function connectTo(
  address: string,
  port: number,
  localAddress: string | undefined,
  sockets: SocketSet,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = sockets.track(connect({ host: address, port, localAddress, timeout: CONNECT_TIMEOUT_MS }));
    const onError = (error: Error): void => reject(error);
    socket.once('error', onError);
    socket.once('timeout', () =>
      socket.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
    );
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.off('error', onError);
      // The sender adds its own error handler; this one keeps a late error from going unhandled.
      socket.on('error', () => undefined);
      resolve(socket);
    });
  });
}

/**
 * Runs `xm migrate` on the sending host, as xend does. The migration belongs to the simulated
 * xend, not to the xm client: it carries on when the client goes away.
 */
export async function migrateDomain(
  host: OutgoingHost,
  env: MigrationEnvironment,
  request: MigrateRequest,
): Promise<XmResult> {
  const table = host.domainTable;
  const domain = table.find(request.domain);
  if (domain === undefined) return failure(`Error: Domain '${request.domain}' does not exist.`);
  if (domain.incoming) return failure(`Error: Domain '${domain.name}' is still arriving by migration.`);

  const address = env.names.resolve(request.target);
  if (address === undefined) return failure("Error: (-2, 'Name or service not known')");

  const start = Date.now();
  const targetLabel = (): string =>
    env.identifyHost(address, request.port) ?? `${request.target}:${request.port}`;
  let socket: Socket;
  try {
    // xend binds to the host's own address, except for loopback targets such as a tunnel's port.
    const localAddress = address === '127.0.0.1' ? undefined : host.address;
    socket = await connectTo(address, request.port, localAddress, env.sockets);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    const reason = ERRNO_TEXT[code] ?? (error instanceof Error ? error.message : String(error));
    host.log(
      'ERROR',
      'XendCheckpoint',
      `Migration of ${domain.name} to ${address}:${request.port} failed: ${reason}.`,
    );
    recordTransfer(
      env,
      host,
      { vm: domain.name, source: host.name, target: targetLabel(), start },
      'failed',
      0,
      reason,
    );
    return failure(`Error: can't connect: ${reason}`);
  }

  return sendDomain(host, env, { request, domain, socket, start, targetLabel });
}

/** State of one outgoing migration whose connection is open. */
interface OutgoingTransfer {
  request: MigrateRequest;
  domain: Domain;
  socket: Socket;
  start: number;
  targetLabel: () => string;
}

async function sendDomain(
  host: OutgoingHost,
  env: MigrationEnvironment,
  transfer: OutgoingTransfer,
): Promise<XmResult> {
  const { request, domain, socket, start } = transfer;
  const table = host.domainTable;
  const name = domain.name;
  const wasRunning = domain.state === 'running';
  const localPeer = `${socket.localAddress ?? ''}:${socket.localPort ?? 0}`;
  const transferId = randomUUID();
  const dirty = request.live ? host.dirtyShare : 0;
  const total = Math.round(domain.memoryMiB * env.bytesPerMiB * (1 + dirty));

  table.rename(domain, `${MIGRATING_PREFIX}${name}`);
  if (!request.live) table.setState(domain, 'paused');
  host.log(
    'INFO',
    'XendCheckpoint',
    `Sending ${name} (${total} bytes) to ${request.target}:${request.port}.`,
  );

  const replies = new ReplyWatcher(socket);
  const onAbort = (): void => {
    socket.destroy();
  };
  env.signal.addEventListener('abort', onAbort, { once: true });
  if (env.signal.aborted) onAbort();

  const header = encodeHeader({
    format: MIGRATION_FORMAT,
    transferId,
    bytes: total,
    domain: {
      name,
      uuid: domain.uuid,
      memoryMiB: domain.memoryMiB,
      vcpus: domain.vcpus,
      disks: domain.disks,
      vifs: domain.vifs,
      state: wasRunning ? 'running' : 'paused',
    },
  });
  try {
    await writeWithBackpressure(socket, header);
    await sendMemory(socket, host, total, () => replies.ended, env.signal);
  } catch (error) {
    replies.socketError ??= error as NodeJS.ErrnoException;
  }
  const outcome = await replies.ending;
  env.signal.removeEventListener('abort', onAbort);

  if (outcome === 'done') {
    socket.end();
    table.remove(domain);
    host.log(
      'INFO',
      'XendCheckpoint',
      `Migration of ${name} to ${request.target}:${request.port} completed.`,
    );
    const incoming = env.ledger.takeIncoming(transferId);
    const target = incoming?.targetHost ?? transfer.targetLabel();
    recordTransfer(
      env,
      host,
      { vm: name, source: host.name, target, start },
      'completed',
      incoming?.bytesReceived ?? total,
    );
    return { stdout: '', stderr: '', code: 0 };
  }

  socket.destroy();
  const message = replies.errorLine(name, env.signal.aborted);
  host.log('ERROR', 'XendCheckpoint', `Migration of ${name} failed: ${message.replace(/^Error: /, '')}`);

  // Wait for the receiver to destroy its paused copy first, so that the name is free again
  // and both hosts show the final state when xm returns.
  // NOTE: a rejection that arrives through a forward is recorded as 'failed', because the
  // receiver saw the forward's address rather than this socket's.
  const rejectedBy = env.ledger.takeRejection(localPeer);
  const incoming = env.ledger.peekIncoming(transferId);
  if (incoming !== undefined) {
    await Promise.race([incoming.settled(), sleep(SETTLE_TIMEOUT_MS, undefined, { ref: false })]);
    env.ledger.takeIncoming(transferId);
  }
  if (table.has(domain)) {
    table.rename(domain, name);
    if (wasRunning) table.setState(domain, 'running');
  }

  const target = incoming?.targetHost ?? rejectedBy ?? transfer.targetLabel();
  const record = { vm: name, source: host.name, target, start };
  if (rejectedBy !== undefined) {
    recordTransfer(
      env,
      host,
      record,
      'rejected',
      0,
      `rejected by the xend-relocation-hosts-allow of ${rejectedBy}`,
    );
  } else {
    const detail = incoming?.detail ?? message.replace(/^Error: /, '');
    recordTransfer(env, host, record, 'failed', incoming?.bytesReceived ?? 0, detail);
  }
  return failure(message);
}

function recordTransfer(
  env: MigrationEnvironment,
  host: OutgoingHost,
  record: { vm: string; source: string; target: string; start: number },
  outcome: TransferOutcome,
  bytes: number,
  detail?: string,
): void {
  try {
    env.transfers.add({
      ...record,
      end: Date.now(),
      outcome,
      bytes,
      ...(detail === undefined ? {} : { detail }),
    });
  } catch (error) {
    host.log(
      'ERROR',
      'lab',
      `Cannot record the transfer of ${record.vm} in the transfer log: ${String(error)}`,
    );
  }
}

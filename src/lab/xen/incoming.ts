import type { Socket } from 'node:net';
import { findDeviceProblem, type HostDevices } from './devices.js';
import type { Domain, DomainTable } from './domains.js';
import type { IncomingTransfer, RelocationLedger } from './ledger.js';
import { LineReader } from './sockets.js';
import { MAX_HEADER_BYTES, formatReply, parseHeader, type MigrationHeader } from './wire.js';
import type { XendLogger } from './xend-log.js';

/** The parts of a simulated host that receive a migration. */
export interface IncomingHost {
  readonly name: string;
  readonly domainTable: DomainTable;
  freeMemoryMiB(): number;
  devices(): HostDevices;
  readonly log: XendLogger;
}

// Retry count shown in the balloon line. The lab checks free memory once instead of retrying,
// so memory that frees up a moment later (say, by a finishing outgoing migration) does not help.
const BALLOON_RETRIES = 20;

// How long the receiver keeps reading after it sent ERROR, so that the sender reads the
// message before the connection closes instead of getting a reset.
const ERROR_LINGER_MS = 5_000;

/**
 * Receives one migration on a connection that passed the allow list, as xend's restore does.
 * The domain is created paused with a new id as soon as the header arrives. It is resumed when
 * all memory bytes have arrived, and destroyed if the stream ends early.
 */
export function receiveMigration(
  socket: Socket,
  host: IncomingHost,
  ledger: RelocationLedger,
  peer: string,
): void {
  const { log, domainTable } = host;
  const reader = new LineReader(MAX_HEADER_BYTES);
  let phase: 'header' | 'memory' | 'finished' = 'header';
  let header: MigrationHeader | undefined;
  let transfer: IncomingTransfer | undefined;
  let domain: Domain | undefined;

  const reject = (message: string): void => {
    phase = 'finished';
    if (domain !== undefined) domainTable.remove(domain);
    transfer?.settle('failed', message);
    socket.end(formatReply({ kind: 'error', message }));
    // Input is still read (and dropped) until the sender closes or the linger time ends.
    setTimeout(() => socket.destroy(), ERROR_LINGER_MS).unref();
  };

  /** Creates the paused domain from the header line; returns false when the restore failed. */
  const construct = (line: string): boolean => {
    try {
      header = parseHeader(line);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      log('ERROR', 'XendCheckpoint', `Restore from ${peer} failed: ${reason}.`);
      reject(`Restore failed: ${reason}`);
      return false;
    }
    const incomingDomain = header.domain;
    transfer = ledger.openIncoming(header.transferId, host.name);
    log(
      'INFO',
      'XendCheckpoint',
      `Restoring domain ${incomingDomain.name} (${incomingDomain.memoryMiB} MiB) sent from ${peer}.`,
    );

    const existing = domainTable.list().find((candidate) => candidate.name === incomingDomain.name);
    if (existing !== undefined) {
      const message = `Domain '${incomingDomain.name}' already exists with ID '${existing.id}'`;
      log('ERROR', 'XendCheckpoint', `Restore failed: ${message}.`);
      reject(message);
      return false;
    }

    const freeKiB = host.freeMemoryMiB() * 1024;
    const neededKiB = incomingDomain.memoryMiB * 1024;
    if (freeKiB < neededKiB) {
      log(
        'DEBUG',
        'balloon',
        `Balloon: ${freeKiB} KiB free; need ${neededKiB}; retries: ${BALLOON_RETRIES}.`,
      );
      log('ERROR', 'balloon', 'Not enough memory is available, and dom0 cannot be shrunk any further.');
      log('ERROR', 'XendCheckpoint', 'Domain construction failed');
      reject(`Domain construction failed: ${neededKiB} KiB needed, ${freeKiB} KiB free on ${host.name}`);
      return false;
    }

    const deviceProblem = findDeviceProblem(incomingDomain, host.devices());
    if (deviceProblem !== undefined) {
      log('ERROR', 'XendDomainInfo', deviceProblem);
      log('ERROR', 'XendCheckpoint', 'Domain construction failed');
      reject(`Domain construction failed: ${deviceProblem}`);
      return false;
    }

    domain = domainTable.create({ ...incomingDomain, state: 'paused', incoming: true });
    log(
      'INFO',
      'XendDomainInfo',
      `Created domain ${domain.name} with id ${domain.id}, paused while memory arrives.`,
    );
    socket.write(formatReply({ kind: 'accepted', domid: domain.id }));
    phase = 'memory';
    return true;
  };

  const receive = (bytes: number): void => {
    if (transfer === undefined || header === undefined || domain === undefined) return;
    transfer.bytesReceived += bytes;
    if (transfer.bytesReceived > header.bytes) {
      log(
        'ERROR',
        'XendCheckpoint',
        `Restore of ${domain.name} failed: more than ${header.bytes} bytes arrived.`,
      );
      reject('Restore failed: the stream is longer than its header announced');
      return;
    }
    if (transfer.bytesReceived < header.bytes) return;

    phase = 'finished';
    domainTable.finishIncoming(domain, header.domain.state);
    log('INFO', 'XendCheckpoint', `Restore of ${domain.name} complete; domain ${domain.id} resumed.`);
    transfer.settle('completed');
    socket.end(formatReply({ kind: 'done' }));
  };

  socket.on('data', (chunk: Buffer) => {
    if (phase === 'memory') {
      receive(chunk.length);
      return;
    }
    if (phase !== 'header') return;

    const { lines, rest, overflow } = reader.push(chunk, true);
    const line = lines[0];
    if (line === undefined) {
      if (overflow) {
        log(
          'ERROR',
          'XendCheckpoint',
          `Restore from ${peer} failed: no header within ${MAX_HEADER_BYTES} bytes.`,
        );
        phase = 'finished';
        socket.destroy();
      }
      return;
    }
    if (construct(line)) receive(rest.length);
  });

  socket.on('close', () => {
    if (phase === 'header') {
      log(
        'DEBUG',
        'relocation',
        `Relocation connection from ${peer} closed before a migration header arrived.`,
      );
      return;
    }
    if (phase !== 'memory' || domain === undefined || transfer === undefined || header === undefined) return;

    phase = 'finished';
    const detail = `the stream ended after ${transfer.bytesReceived} of ${header.bytes} bytes`;
    log(
      'ERROR',
      'XendCheckpoint',
      `Restore of ${domain.name} failed: ${detail}; destroying domain ${domain.id}.`,
    );
    domainTable.remove(domain);
    transfer.settle('failed', `target destroyed the paused domain: ${detail}`);
  });
}

/**
 * The lab's relocation stream between two simulated xends.
 *
 * Sender to receiver: one JSON header line (MigrationHeader), then exactly `bytes` bytes that
 * stand for the domain's memory. Receiver to sender: text lines `ACCEPTED <domid>` once the
 * paused domain exists, then `DONE` when all bytes arrived and the domain runs, or
 * `ERROR <message>` followed by the end of the connection.
 */

export const MIGRATION_FORMAT = 'ferry-lab-xen-migration/1';

/** Maximum length of the header line in bytes; the receiver drops a connection that sends more. */
export const MAX_HEADER_BYTES = 64 * 1024;

/** The domain definition that travels with a migration. */
export interface MigratingDomain {
  name: string;
  uuid: string;
  memoryMiB: number;
  vcpus: number;
  disks: string[];
  vifs: Array<{ bridge: string; mac: string }>;
  /** State to resume in once the memory has arrived. */
  state: 'running' | 'paused';
}

export interface MigrationHeader {
  format: typeof MIGRATION_FORMAT;
  /** Random id that links the sender's and the receiver's view of one transfer. */
  transferId: string;
  /** Number of memory bytes that follow the header. */
  bytes: number;
  domain: MigratingDomain;
}

export type TargetReply =
  { kind: 'accepted'; domid: number } | { kind: 'done' } | { kind: 'error'; message: string };

export function encodeHeader(header: MigrationHeader): Buffer {
  return Buffer.from(`${JSON.stringify(header)}\n`, 'utf8');
}

const isString = (value: unknown): value is string => typeof value === 'string';
const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0;

/** Parses and validates a header line; throws an Error naming the invalid field. */
export function parseHeader(line: string): MigrationHeader {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error('the migration header is not JSON');
  }
  const header = value as Partial<MigrationHeader> | null;
  if (header?.format !== MIGRATION_FORMAT) throw new Error(`the stream format is not ${MIGRATION_FORMAT}`);
  if (!isString(header.transferId)) throw new Error('the migration header has no transferId');
  if (!isCount(header.bytes)) throw new Error('the migration header has no valid byte count');
  const domain = header.domain as Partial<MigratingDomain> | undefined;
  if (
    domain === undefined ||
    !isString(domain.name) ||
    !isString(domain.uuid) ||
    !isCount(domain.memoryMiB) ||
    !isCount(domain.vcpus) ||
    !Array.isArray(domain.disks) ||
    !domain.disks.every(isString) ||
    !Array.isArray(domain.vifs) ||
    !domain.vifs.every((vif) => isString(vif?.bridge) && isString(vif?.mac)) ||
    (domain.state !== 'running' && domain.state !== 'paused')
  ) {
    throw new Error('the migration header has an invalid domain definition');
  }
  return header as MigrationHeader;
}

export function formatReply(reply: TargetReply): string {
  switch (reply.kind) {
    case 'accepted':
      return `ACCEPTED ${reply.domid}\n`;
    case 'done':
      return 'DONE\n';
    case 'error':
      return `ERROR ${reply.message.replace(/\n/g, ' ')}\n`;
  }
}

/** Parses one reply line; returns undefined for a line that is not part of the protocol. */
export function parseReply(line: string): TargetReply | undefined {
  if (line === 'DONE') return { kind: 'done' };
  const accepted = /^ACCEPTED (\d+)$/.exec(line);
  if (accepted?.[1] !== undefined) return { kind: 'accepted', domid: Number(accepted[1]) };
  if (line.startsWith('ERROR ')) return { kind: 'error', message: line.slice('ERROR '.length) };
  return undefined;
}

/**
 * Host key pinning. A target pins its host key either by fingerprint (`hostKey`) or through a
 * known_hosts file. The key the host presents during key exchange must be one of the pinned
 * keys, or ssh2 aborts the handshake before authentication starts.
 */

import { FerryError } from '../errors.js';
import { fingerprintOfKey, knownHostsName, readKnownHostKeys } from './fingerprint.js';

/** The part of a target that pins its host key. */
export interface HostKeySource {
  name: string;
  address: string;
  port: number;
  hostKey?: string;
  knownHostsFile?: string;
}

/** Fingerprints a connection accepts and rejects, and where they came from (for messages). */
export interface HostKeyPin {
  trusted: string[];
  revoked: string[];
  /** `hostKey` or the known_hosts path. */
  origin: string;
}

/**
 * Loads the pin of a target. A missing known_hosts file gives an empty pin, which refuses
 * every key with HOST_KEY_UNKNOWN; an unreadable one throws HOST_KEY_UNKNOWN at once.
 */
export async function loadHostKeyPin(source: HostKeySource): Promise<HostKeyPin> {
  if (source.hostKey !== undefined) return { trusted: [source.hostKey], revoked: [], origin: 'hostKey' };
  const path = source.knownHostsFile;
  if (path === undefined) return { trusted: [], revoked: [], origin: 'hostKey' };
  try {
    return { ...(await readKnownHostKeys(path, source.address, source.port)), origin: path };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { trusted: [], revoked: [], origin: path };
    throw new FerryError(
      'HOST_KEY_UNKNOWN',
      `Known hosts file ${path} of host '${source.name}' cannot be read: ${(error as Error).message}.`,
      { context: { host: source.name, knownHostsFile: path }, cause: error },
    );
  }
}

/** Reads the key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`, ...) from the start of a key blob. */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const length = blob.readUInt32BE(0);
  return length > 0 && length <= 64 && blob.length >= 4 + length
    ? blob.toString('latin1', 4, 4 + length)
    : 'unknown';
}

/**
 * Checks a presented host key blob against the pin. Returns undefined when the key is pinned,
 * otherwise the error to raise: HOST_KEY_MISMATCH for another or a revoked key,
 * HOST_KEY_UNKNOWN when nothing is pinned for the host.
 */
export function checkHostKey(source: HostKeySource, pin: HostKeyPin, blob: Buffer): FerryError | undefined {
  const presented = fingerprintOfKey(blob);
  const keyType = keyTypeOf(blob);
  const where = `'${source.name}' (${source.address}:${source.port})`;
  const context = { host: source.name, address: source.address, port: source.port, presented, keyType };

  if (pin.revoked.includes(presented)) {
    return new FerryError(
      'HOST_KEY_MISMATCH',
      `Host ${where} presented the ${keyType} key ${presented}, which ${pin.origin} marks as @revoked. ` +
        'The connection was refused before authentication; find out why the host uses a revoked key before going on.',
      { context: { ...context, expected: pin.trusted } },
    );
  }
  if (pin.trusted.includes(presented)) return undefined;

  if (pin.trusted.length === 0) {
    const missing =
      pin.origin === 'hostKey'
        ? 'the target sets neither hostKey nor knownHostsFile'
        : `${pin.origin} has no entry for ${knownHostsName(source.address, source.port)}`;
    return new FerryError(
      'HOST_KEY_UNKNOWN',
      `Host key of ${where} is unknown: ${missing}. The host presented the ${keyType} key ${presented}. ` +
        'The connection was refused before authentication. Confirm the key on the host itself ' +
        '(ssh-keygen -lf on its host key), then set it as hostKey or add the host to known_hosts.',
      { context: { ...context, expected: [] } },
    );
  }

  // NOTE: ssh2 offers host key types in its own order (ed25519 first). Unlike OpenSSH it does
  // not prefer the types pinned here, so a pin of only the RSA key of a host that also has an
  // ed25519 key fails. The message names the presented type for that reason.
  return new FerryError(
    'HOST_KEY_MISMATCH',
    `Host key of ${where} does not match: expected ${pin.trusted.join(' or ')} (from ${pin.origin}), ` +
      `the host presented the ${keyType} key ${presented}. The connection was refused before authentication. ` +
      'If the host was reinstalled or its key replaced, confirm the new key on the host itself and update ' +
      `${pin.origin === 'hostKey' ? 'hostKey in the inventory' : pin.origin}; otherwise treat this as a possible attack.`,
    { context: { ...context, expected: pin.trusted } },
  );
}

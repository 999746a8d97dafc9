/**
 * Host key fingerprints in OpenSSH's form and the known_hosts lookups that pin them.
 *
 * OpenSSH prints a key as `SHA256:` followed by the unpadded base64 SHA-256 of the key blob
 * (the wire-format public key). ssh2 hands `hostVerifier` that same blob, but its own
 * `hostHash` option yields hex digests, so ferry computes the OpenSSH form itself.
 */

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** Returns the OpenSSH SHA256 fingerprint of a raw public key blob. */
export function fingerprintOfKey(blob: Buffer): string {
  const digest = createHash('sha256').update(blob).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

/**
 * Returns the fingerprint of a public key as OpenSSH writes it (`ssh-ed25519 AAAA... comment`,
 * the form of `.pub` files and of the key fields of known_hosts).
 */
export function fingerprintOfPublicKey(line: string): string {
  const blob = decodeKeyBlob(line.trim().split(/\s+/)[1]);
  if (blob === undefined) {
    throw new Error(`Invalid OpenSSH public key '${line.slice(0, 40)}': expected '<type> <base64 blob>'.`);
  }
  return fingerprintOfKey(blob);
}

/** Decodes a base64 key blob, or returns undefined when the text is not one. */
function decodeKeyBlob(text: string | undefined): Buffer | undefined {
  if (text === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  const blob = Buffer.from(text, 'base64');
  // A blob starts with the length-prefixed key type, so anything shorter than that is not a key.
  return blob.length > 4 ? blob : undefined;
}

/**
 * Returns the name a host is filed under in known_hosts: the bare address for port 22 and
 * `[address]:port` for any other port. OpenSSH follows the same rule, so a plain entry never
 * matches a non-standard port.
 */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

/** Fingerprints that known_hosts pins for one host, and keys it marks as revoked. */
export interface KnownHostKeys {
  /** Keys listed for the host on lines without a marker. */
  trusted: string[];
  /** Keys on `@revoked` lines, for any host: such a key is never accepted. */
  revoked: string[];
}

/**
 * Finds the keys that known_hosts text lists for `address:port`. Host fields may hold comma
 * lists, `*` and `?` wildcards, `!` negations and hashed `|1|salt|hash` entries.
 * `@cert-authority` lines are skipped because ferry does not accept host certificates, and
 * malformed lines are skipped as OpenSSH skips them.
 */
export function findKnownHostKeys(text: string, address: string, port: number): KnownHostKeys {
  const name = knownHostsName(address, port).toLowerCase();
  const result: KnownHostKeys = { trusted: [], revoked: [] };

  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);

    let marker: string | undefined;
    if (fields[0]?.startsWith('@')) marker = fields.shift();
    const [hosts, , keyBase64] = fields;
    const blob = decodeKeyBlob(keyBase64);
    if (hosts === undefined || blob === undefined) continue;

    if (marker === '@revoked') {
      result.revoked.push(fingerprintOfKey(blob));
    } else if (marker === undefined && hostFieldMatches(hosts, name)) {
      result.trusted.push(fingerprintOfKey(blob));
    }
  }
  return result;
}

/**
 * Reads a known_hosts file and returns the keys it lists for `address:port`. Rejects with the
 * fs error (ENOENT, EACCES) when the file cannot be read.
 */
export async function readKnownHostKeys(path: string, address: string, port: number): Promise<KnownHostKeys> {
  return findKnownHostKeys(await readFile(path, 'utf8'), address, port);
}

/** Applies OpenSSH's rule: some positive pattern matches and no negated pattern does. */
function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|')) return hashedHostMatches(field, name);

  let matched = false;
  for (const entry of field.toLowerCase().split(',')) {
    const negated = entry.startsWith('!');
    const pattern = negated ? entry.slice(1) : entry;
    if (!wildcardMatches(pattern, name)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

/** Checks a hashed entry `|1|<base64 salt>|<base64 HMAC-SHA1(salt, name)>`. */
function hashedHostMatches(field: string, name: string): boolean {
  const [, kind, saltBase64, hashBase64] = field.split('|');
  if (kind !== '1' || saltBase64 === undefined || hashBase64 === undefined) return false;
  const expected = Buffer.from(hashBase64, 'base64');
  const actual = createHmac('sha1', Buffer.from(saltBase64, 'base64')).update(name).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** Matches `*` (any run of characters) and `?` (one character) as OpenSSH's match_pattern does. */
function wildcardMatches(pattern: string, name: string): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern === name;
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replaceAll('*', '.*')
    .replaceAll('?', '.');
  return new RegExp(`^${source}$`, 's').test(name);
}

/**
 * API tokens. A token is `ferry_` followed by 43 base64url characters (32 random bytes); the
 * configuration stores only its SHA-256 digest. A fast hash is enough here because tokens are
 * random and long, unlike passwords, so the digest cannot be reversed by guessing.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import type { ProducerIdentity, RateLimit } from '../common/identity.js';

export const tokenPrefix = 'ferry_';
/** Maximum length of a bearer value that is hashed; longer ones are rejected unread. */
const maxTokenLength = 512;

export interface TokenEntry {
  identity: ProducerIdentity;
  /** SHA-256 digest of the token. */
  digest: Buffer;
}

export interface TokenSpec {
  name: string;
  /** SHA-256 of the token in lowercase hex. */
  sha256: string;
  hosts: ReadonlySet<string> | undefined;
  dashboard: boolean;
  rateLimit: RateLimit;
}

/** Generates a new random token. */
export function generateToken(): string {
  return `${tokenPrefix}${randomBytes(32).toString('base64url')}`;
}

/** Returns the SHA-256 of a token in lowercase hex, the form the configuration stores. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Builds the token entries; `fail` makes the error for a duplicate name or digest. */
export function buildTokenEntries(specs: TokenSpec[], fail: (detail: string) => Error): TokenEntry[] {
  const names = new Set<string>();
  const digests = new Set<string>();
  return specs.map((spec, index) => {
    if (names.has(spec.name)) throw fail(`tokens.${index}.name: "${spec.name}" is used by two tokens.`);
    if (digests.has(spec.sha256)) throw fail(`tokens.${index}.sha256: the same token is listed twice.`);
    names.add(spec.name);
    digests.add(spec.sha256);
    const identity: ProducerIdentity = {
      name: spec.name,
      dashboard: spec.dashboard,
      rateLimit: spec.rateLimit,
    };
    if (spec.hosts !== undefined) identity.hosts = spec.hosts;
    return { identity, digest: Buffer.from(spec.sha256, 'hex') };
  });
}

/** Returns the token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
  return match?.[1];
}

export class TokenRegistry {
  readonly #entries: readonly TokenEntry[];

  constructor(entries: readonly TokenEntry[]) {
    this.#entries = entries;
  }

  /**
   * Returns the identity of a token, or undefined. The digest is compared with every entry in
   * constant time and without stopping at a match, so the time taken does not tell which
   * entry, if any, matched.
   */
  authenticate(token: string | undefined): ProducerIdentity | undefined {
    if (token === undefined || token.length === 0 || token.length > maxTokenLength) return undefined;
    const digest = createHash('sha256').update(token, 'utf8').digest();
    let found: ProducerIdentity | undefined;
    for (const entry of this.#entries) {
      if (timingSafeEqual(digest, entry.digest)) found = entry.identity;
    }
    return found;
  }

  /** Returns the identity with this name, for sessions that carry a name rather than a token. */
  byName(name: string): ProducerIdentity | undefined {
    return this.#entries.find((entry) => entry.identity.name === name)?.identity;
  }
}

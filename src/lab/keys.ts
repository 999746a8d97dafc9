import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** A key pair written by ssh-keygen. */
export interface KeyPair {
  privatePath: string;
  publicPath: string;
  /** The public key line: `ssh-ed25519 AAAA... comment`. */
  publicLine: string;
  /** OpenSSH's fingerprint form: `SHA256:` and the unpadded base64 SHA-256 of the key blob. */
  fingerprint: string;
}

/** Creates an ed25519 key pair with no passphrase at `path` and `path.pub`. */
export function generateKeyPair(path: string, comment: string): KeyPair {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path], { stdio: 'pipe' });
  const publicLine = readFileSync(`${path}.pub`, 'utf8').trim();
  return { privatePath: path, publicPath: `${path}.pub`, publicLine, fingerprint: fingerprintOf(publicLine) };
}

/** Computes the OpenSSH SHA256 fingerprint of a public key line. */
export function fingerprintOf(publicLine: string): string {
  const blob = publicLine.split(/\s+/)[1];
  if (blob === undefined) throw new Error(`Not an OpenSSH public key line: '${publicLine.slice(0, 40)}'.`);
  const digest = createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

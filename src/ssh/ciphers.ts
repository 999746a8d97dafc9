/**
 * Cipher preference of ferry's SSH connections: the ssh2 connections of the bastion, and the
 * OpenSSH client that a direct tunnel runs on the source host.
 *
 * On a CPU with AES instructions (AES-NI on x86-64, the crypto extensions on ARMv8), AES-GCM
 * moves a stream with less CPU than chacha20-poly1305, which OpenSSH's client puts first by
 * default. Every SSH path of a migration is CPU-bound, so the cipher sets the speed;
 * BENCHMARKS.md has the figures. The client's order decides, because SSH picks the first
 * cipher of the client's list that the server also offers. Every cipher listed here is an
 * AEAD or CTR cipher, and all of them are in OpenSSH's default set since OpenSSH 6.5, so a
 * server that offers only some of them still finds one.
 */

import { getCiphers } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** SSH cipher names, AES-GCM first, then OpenSSH's remaining defaults in its own order. */
const aesFirst = [
  'aes128-gcm@openssh.com',
  'aes256-gcm@openssh.com',
  'chacha20-poly1305@openssh.com',
  'aes128-ctr',
  'aes192-ctr',
  'aes256-ctr',
] as const;

/** The OpenSSL cipher behind each SSH cipher, as ssh2 maps them. */
const opensslNames: Record<(typeof aesFirst)[number], string> = {
  'aes128-gcm@openssh.com': 'aes-128-gcm',
  'aes256-gcm@openssh.com': 'aes-256-gcm',
  'chacha20-poly1305@openssh.com': 'chacha20',
  'aes128-ctr': 'aes-128-ctr',
  'aes192-ctr': 'aes-192-ctr',
  'aes256-ctr': 'aes-256-ctr',
};

/**
 * The `Ciphers` option of the OpenSSH client in direct tunnels: OpenSSH's default set with
 * AES-GCM moved to the front.
 * NOTE: the order is fixed because the CPUs of the source and target hosts are not known to
 * the bastion. On hosts without AES instructions chacha20-poly1305 would be faster.
 */
export const openSshCipherOrder = aesFirst.join(',');

/**
 * Reads /proc/cpuinfo text (x86 `flags`, ARM `Features`) and returns whether the CPU has AES
 * instructions, or undefined when the text lists no CPU flags.
 */
export function cpuinfoHasAes(cpuinfo: string): boolean | undefined {
  let sawFlags = false;
  for (const line of cpuinfo.split('\n')) {
    const match = /^(flags|Features)\s*:(.*)$/.exec(line);
    if (match === null) continue;
    sawFlags = true;
    if ((match[2] ?? '').trim().split(/\s+/).includes('aes')) return true;
  }
  return sawFlags ? false : undefined;
}

let cachedAes: { value: boolean | undefined } | undefined;

/** Returns whether this machine's CPU has AES instructions, or undefined where /proc/cpuinfo cannot tell. */
export function localCpuHasAes(): boolean | undefined {
  if (cachedAes === undefined) {
    let value: boolean | undefined;
    try {
      value = cpuinfoHasAes(readFileSync('/proc/cpuinfo', 'utf8'));
    } catch {
      value = undefined;
    }
    cachedAes = { value };
  }
  return cachedAes.value;
}

/**
 * Returns the cipher list for ssh2's `algorithms.cipher`: AES-GCM first when the CPU has AES
 * instructions, without the ciphers that Node's OpenSSL lacks (as in FIPS mode). Returns
 * undefined to keep ssh2's own order, which puts chacha20-poly1305 first on CPUs that it
 * detects as lacking AES instructions.
 */
export function ssh2CipherOrder(hasAes: boolean | undefined = localCpuHasAes()): string[] | undefined {
  if (hasAes !== true) return undefined;
  const available = new Set(getCiphers());
  const ciphers = aesFirst.filter((name) => available.has(opensslNames[name]));
  return ciphers.length > 0 ? ciphers : undefined;
}

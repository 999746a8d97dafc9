/**
 * Translation of ssh2's plain errors into FerryErrors. ssh2 tags its errors with a `level`
 * (`client-socket`, `client-dns`, `client-timeout`, `client-authentication`, `agent`,
 * `handshake`, `protocol`), and socket errors carry the errno `code`. Retry decisions need
 * ferry's codes instead, so every ssh2 error is wrapped here with the original as `cause`.
 */

import { FerryError } from '../errors.js';
import { describeCredentials, type CredentialSource } from './identity.js';

/** An error as ssh2 emits it. */
export type Ssh2Error = Error & {
  level?: string;
  code?: string;
  reason?: number | string;
  description?: string;
};

/** The target fields that error messages name. */
export interface ErrorTarget extends CredentialSource {
  address: string;
  port: number;
  user: string;
}

/** Progress of a connect attempt at the moment it failed. */
export interface ConnectProgress {
  /** The TCP connection was established. */
  socketConnected: boolean;
  readyTimeoutMs: number;
}

/** Errno codes that mean the host could not be reached or named. */
const unreachableCodes = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Wraps an error that ended a connect attempt before the connection was ready. */
export function connectError(error: Ssh2Error, target: ErrorTarget, progress: ConnectProgress): FerryError {
  const where = `'${target.name}' (${target.address}:${target.port})`;
  const context = { host: target.name, address: target.address, port: target.port, sshLevel: error.level };

  if (error.level === 'client-authentication' || error.level === 'agent') {
    return new FerryError(
      'AUTH_FAILED',
      `SSH authentication as '${target.user}' on ${where} failed: the host accepted none of ${describeCredentials(target)}. ` +
        `Add the public key to the authorized_keys of '${target.user}' on the host, or fix user, identityFile or agent in the inventory.`,
      { context: { ...context, user: target.user }, cause: error },
    );
  }

  if (error.level === 'client-timeout') {
    if (!progress.socketConnected) {
      return new FerryError(
        'SSH_CONNECT_FAILED',
        `SSH connection to ${where} failed: no TCP connection within ${progress.readyTimeoutMs} ms. Check the address, port and firewalls.`,
        { context: { ...context, errno: 'ETIMEDOUT' }, cause: error },
      );
    }
    return new FerryError(
      'SSH_TIMEOUT',
      `SSH handshake with ${where} timed out: key exchange and authentication did not finish within ${progress.readyTimeoutMs} ms.`,
      { context, cause: error },
    );
  }

  if (error.level === 'client-dns' || (error.code !== undefined && unreachableCodes.has(error.code))) {
    const reason =
      error.code === 'ECONNREFUSED'
        ? 'connection refused (is sshd running and listening on that port?)'
        : error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN' || error.level === 'client-dns'
          ? `the name '${target.address}' could not be resolved`
          : `${error.code ?? 'unreachable'}: ${error.message}`;
    return new FerryError('SSH_CONNECT_FAILED', `SSH connection to ${where} failed: ${reason}.`, {
      context: { ...context, errno: error.code },
      cause: error,
    });
  }

  // Resets, a server that closes before the banner (sshd's MaxStartups drops connections that
  // way), and key exchange failures such as no common algorithm all end up here.
  return new FerryError('SSH_CONNECT_FAILED', `SSH connection to ${where} failed: ${error.message}.`, {
    context: { ...context, errno: error.code },
    cause: error,
  });
}

/** Wraps an error that ended a connection after it was ready. */
export function disconnectError(error: Ssh2Error, target: ErrorTarget, keepalive: string): FerryError {
  const where = `'${target.name}' (${target.address}:${target.port})`;
  const context = { host: target.name, address: target.address, port: target.port, sshLevel: error.level };
  if (error.level === 'client-timeout') {
    return new FerryError(
      'SSH_TIMEOUT',
      `SSH connection to ${where} timed out: the host answered no keepalive for ${keepalive}.`,
      {
        context,
        cause: error,
      },
    );
  }
  return new FerryError('SSH_DISCONNECTED', `SSH connection to ${where} broke: ${error.message}.`, {
    context: { ...context, errno: error.code },
    cause: error,
  });
}

/** Wraps a failure to open a direct-tcpip channel (ssh2 forwardOut). */
export function forwardOutError(error: Ssh2Error, target: ErrorTarget, destination: string): FerryError {
  const where = `'${target.name}'`;
  const context = { host: target.name, destination, channelOpenReason: error.reason };
  // RFC 4254 section 5.1 reason codes: 1 administratively prohibited, 2 connect failed.
  if (error.reason === 1) {
    return new FerryError(
      'FORWARDING_PROHIBITED',
      `sshd on ${where} refused to forward to ${destination} (administratively prohibited); set AllowTcpForwarding yes (or local) there.`,
      { context, cause: error },
    );
  }
  const detail = error.message.replace(/^\(SSH\) Channel open failure: /, '');
  return new FerryError('TUNNEL_FAILED', `Host ${where} could not connect to ${destination}: ${detail}.`, {
    context,
    cause: error,
  });
}

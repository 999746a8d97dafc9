/**
 * The SSH handshake of one connection: TCP connect, key exchange with the host key check, and
 * authentication. Every failure becomes a FerryError (see connect-errors.ts).
 */

import ssh2 from 'ssh2';
import type { ConnectConfig } from 'ssh2';

import { FerryError } from '../errors.js';
import { ssh2CipherOrder } from './ciphers.js';
import { connectError, type Ssh2Error } from './connect-errors.js';
import { checkHostKey, type HostKeyPin } from './host-key.js';
import type { Credentials } from './identity.js';
import type { CompiledConnectOptions } from './options.js';
import type { SshTarget } from './target.js';

/** An authenticated client and the cipher its key exchange chose for data sent to the host. */
export interface Handshake {
  client: ssh2.Client;
  cipher: string | undefined;
}

/**
 * Connects an ssh2 Client and resolves once it is authenticated. The host key is checked
 * against `pin` during key exchange, so a key that is not pinned ends the handshake before
 * any authentication request is sent. Rejects with `signal.reason` when the signal aborts.
 */
export function handshake(
  target: SshTarget,
  compiled: CompiledConnectOptions,
  credentials: Credentials,
  pin: HostKeyPin,
  signal: AbortSignal | undefined,
): Promise<Handshake> {
  return new Promise<Handshake>((resolve, reject) => {
    const client = new ssh2.Client();
    let cipher: string | undefined;
    let hostKeyError: FerryError | undefined;
    let socketConnected = false;
    let settled = false;

    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      client.destroy();
      reject(error);
    };
    const onAbort = (): void => fail(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });

    client.on('connect', () => {
      socketConnected = true;
    });
    client.once('handshake', (negotiated) => {
      cipher = negotiated.cs.cipher;
    });
    // These two stay attached after a failure so that late ssh2 events are absorbed.
    client.on('error', (error: Ssh2Error) => {
      fail(
        hostKeyError ??
          connectError(error, target, { socketConnected, readyTimeoutMs: compiled.readyTimeoutMs }),
      );
    });
    client.on('close', () => {
      const where = `'${target.name}' (${target.address}:${target.port})`;
      fail(
        hostKeyError ??
          new FerryError(
            'SSH_CONNECT_FAILED',
            `SSH connection to ${where} closed before authentication finished.`,
            {
              context: { host: target.name, address: target.address, port: target.port },
            },
          ),
      );
    });
    client.once('ready', () => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      // ssh2 writes every SSH message with its own socket write. With Nagle's algorithm, a small
      // message that follows another waits for the peer's delayed ACK (40 ms on Linux), which
      // made each exec on the lab's loopback take about 45 ms instead of 5.
      client.setNoDelay(true);
      resolve({ client, cipher });
    });

    const config: ConnectConfig = {
      host: target.address,
      port: target.port,
      username: target.user,
      ...credentials,
      readyTimeout: compiled.readyTimeoutMs,
      keepaliveInterval: compiled.keepaliveIntervalMs,
      keepaliveCountMax: compiled.keepaliveCountMax,
      ...cipherAlgorithms(),
      // Runs during key exchange, before any authentication request is sent.
      hostVerifier: (key: Buffer): boolean => {
        const refusal = checkHostKey(target, pin, key);
        if (refusal === undefined) return true;
        hostKeyError = refusal;
        return false;
      },
    };
    try {
      client.connect(config);
    } catch (error) {
      fail(
        connectError(error as Ssh2Error, target, {
          socketConnected,
          readyTimeoutMs: compiled.readyTimeoutMs,
        }),
      );
    }
  });
}

/** ssh2's `algorithms` setting with ferry's cipher order, or nothing to keep ssh2's default. */
function cipherAlgorithms(): Pick<ConnectConfig, 'algorithms'> {
  const cipher = ssh2CipherOrder();
  return cipher === undefined ? {} : { algorithms: { cipher: cipher as ssh2.CipherAlgorithm[] } };
}

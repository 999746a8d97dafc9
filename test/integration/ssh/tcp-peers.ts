/**
 * TCP endpoints for tunnel tests: a server in place of a relocation port, and a client in
 * place of the hypervisor that sends a migration stream. Both hash what they receive.
 */

import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/** What one side of a connection received. */
export interface Received {
  bytes: number;
  sha256: string;
}

export interface HashingServer {
  port: number;
  /** One entry per accepted connection, settled when that connection closes. */
  readonly received: Array<Promise<Received>>;
  /** Sockets of accepted connections, for tests that pause reading. */
  readonly sockets: Socket[];
  close(): Promise<void>;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function randomPayload(bytes: number): Buffer {
  return randomBytes(bytes);
}

/**
 * Starts a server on 127.0.0.1 that hashes everything it receives and sends `reply` on every
 * connection, ending its side once the reply is written and the peer has ended.
 */
export async function startHashingServer(
  reply: Buffer = Buffer.alloc(0),
  options: { paused?: boolean } = {},
): Promise<HashingServer> {
  const received: Array<Promise<Received>> = [];
  const sockets: Socket[] = [];
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    if (options.paused === true) socket.pause();
    received.push(
      new Promise<Received>((resolve, reject) => {
        const hash = createHash('sha256');
        let bytes = 0;
        socket.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          hash.update(chunk);
        });
        socket.on('end', () => socket.end());
        socket.on('error', reject);
        socket.on('close', () => resolve({ bytes, sha256: hash.digest('hex') }));
        if (reply.length > 0) socket.write(reply);
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    sockets,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Connects to 127.0.0.1:port, writes `payload`, ends, and resolves with what came back once the
 * connection closed.
 */
export async function sendThrough(port: number, payload: Buffer): Promise<Received> {
  return new Promise<Received>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const hash = createHash('sha256');
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    socket.on('end', () => socket.end());
    socket.on('error', reject);
    socket.on('close', () => resolve({ bytes, sha256: hash.digest('hex') }));
    socket.end(payload);
  });
}

/** Connects to 127.0.0.1:port and resolves once the peer closed the connection, with what arrived. */
export async function connectAndWait(port: number): Promise<{ bytes: number; error?: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let bytes = 0;
    let error: string | undefined;
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    socket.on('error', (cause: Error) => {
      error = cause.message;
    });
    socket.on('close', () => resolve(error === undefined ? { bytes } : { bytes, error }));
  });
}

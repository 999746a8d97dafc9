/**
 * Child process of the tunnel benchmark: the byte-counting receiver (in place of the
 * target's relocation port) or the sender (in place of the source's hypervisor), driven by
 * its parent over IPC. They run as processes of their own so that their CPU is not charged
 * to the tunnel and they do not compete with ferry's event loop.
 *
 * Times are epoch milliseconds from performance.timeOrigin, so that the sender's start and
 * the receiver's end can be compared.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo } from 'node:net';

import type { EndpointMessage, SendRequest } from './endpoints.js';

const chunkBytes = 1024 * 1024;

function now(): number {
  return performance.timeOrigin + performance.now();
}

function reply(message: EndpointMessage): void {
  process.send?.(message);
}

function runReceiver(): void {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    socket.on('end', () => {
      reply({ kind: 'received', bytes, endAt: now() });
      socket.end();
    });
    socket.on('error', (error) => reply({ kind: 'receive-error', message: error.message, bytes }));
  });
  server.listen(0, '127.0.0.1', () => {
    reply({ kind: 'ready', port: (server.address() as AddressInfo).port });
  });
}

async function send(request: SendRequest): Promise<void> {
  const chunk = randomBytes(chunkBytes);
  const startAt = now();
  const socket = connect({ host: '127.0.0.1', port: request.port, allowHalfOpen: true });
  socket.on('error', (error) => reply({ kind: 'send-error', message: error.message }));
  await once(socket, 'connect');
  let written = 0;
  while (written < request.bytes) {
    const length = Math.min(chunkBytes, request.bytes - written);
    const accepted = socket.write(length === chunkBytes ? chunk : chunk.subarray(0, length));
    written += length;
    if (!accepted) await once(socket, 'drain');
  }
  socket.end();
  // The receiver ends its side once it has counted everything; then the connection closes.
  socket.resume();
  await once(socket, 'close');
  reply({ kind: 'sent', bytes: written, startAt });
}

function runSender(): void {
  process.on('message', (message: SendRequest) => {
    send(message).catch((error: unknown) =>
      reply({ kind: 'send-error', message: error instanceof Error ? error.message : String(error) }),
    );
  });
  reply({ kind: 'ready', port: 0 });
}

const role = process.argv[2];
if (role === 'receiver') runReceiver();
else if (role === 'sender') runSender();
else {
  console.error(`endpoint-process: unknown role '${role ?? ''}'; expected receiver or sender.`);
  process.exit(2);
}
// The parent going away ends this process too.
process.on('disconnect', () => process.exit(0));

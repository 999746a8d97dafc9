import type { Server, Socket } from 'node:net';

/** Every open socket of the simulator, so that stop() can destroy them all. */
export class SocketSet {
  readonly #sockets = new Set<Socket>();

  /** Adds the socket until it closes. */
  track(socket: Socket): Socket {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    return socket;
  }

  destroyAll(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
  }
}

/**
 * Stops a server from listening. The port is free once this resolves; connections that are
 * still open are left alone, so callers destroy them when they must end too.
 */
export function closeServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close();
    setImmediate(resolve);
  });
}

/** Starts listening on address:port; rejects with the listen error, such as EADDRINUSE. */
export function listenOn(server: Server, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen({ host: address, port, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * Writes a chunk and waits while the socket's buffer is full. Rejects when the socket closes
 * or fails before the buffer drains, so a sender does not wait on a closed connection.
 */
export function writeWithBackpressure(socket: Socket, chunk: Buffer): Promise<void> {
  if (socket.destroyed || socket.writableEnded) {
    return Promise.reject(Object.assign(new Error('socket closed'), { code: 'EPIPE' }));
  }
  if (socket.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      socket.off('error', onError);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      cleanup();
      reject(Object.assign(new Error('socket closed'), { code: 'EPIPE' }));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    socket.on('drain', onDrain);
    socket.on('close', onClose);
    socket.on('error', onError);
  });
}

/** Reads newline-terminated lines from a byte stream, refusing lines longer than `maxLength`. */
export class LineReader {
  #pending: Buffer = Buffer.alloc(0);

  constructor(private readonly maxLength: number) {}

  /**
   * Adds bytes and returns the complete lines so far. Stops after the first line when
   * `firstOnly` is set and returns the bytes after it as `rest`.
   */
  push(chunk: Buffer, firstOnly = false): { lines: string[]; rest: Buffer; overflow: boolean } {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const lines: string[] = [];
    for (;;) {
      const newline = this.#pending.indexOf(0x0a);
      if (newline === -1) break;
      lines.push(this.#pending.subarray(0, newline).toString('utf8'));
      this.#pending = this.#pending.subarray(newline + 1);
      if (firstOnly) {
        const rest = this.#pending;
        this.#pending = Buffer.alloc(0);
        return { lines, rest, overflow: false };
      }
    }
    return { lines, rest: Buffer.alloc(0), overflow: this.#pending.length > this.maxLength };
  }
}

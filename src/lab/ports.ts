import { createServer, connect } from 'node:net';

/**
 * Returns a TCP port that was free on `host` a moment ago. Another process can still take it
 * before the caller binds it; lab callers bind at once and retry on EADDRINUSE.
 */
export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves true when something accepts a TCP connection on host:port. */
export async function isListening(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (listening: boolean): void => {
      socket.destroy();
      resolve(listening);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Returns a port that was free on every one of `hosts` a moment ago. Lab hosts share the
 * loopback: a host's relocation port listens on its own address and on 127.0.0.1, and labs
 * started by parallel test files reuse the same addresses, so a port must be free on all.
 */
export async function findPortFreeOn(hosts: string[]): Promise<number> {
  for (let tries = 0; tries < 50; tries += 1) {
    const port = await findFreePort(hosts[0]);
    const taken = await Promise.all(
      hosts.slice(1).map((host) => isBindable(host, port).then((free) => !free)),
    );
    if (!taken.includes(true)) return port;
  }
  throw new Error(`No port was free on all of ${hosts.join(', ')} after 50 tries.`);
}

async function isBindable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

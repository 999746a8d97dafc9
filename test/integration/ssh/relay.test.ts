import { connect } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isFerryError } from '../../../src/errors.js';
import { SshConnection } from '../../../src/ssh/connection.js';
import { SshPool } from '../../../src/ssh/pool.js';
import { openRelayTunnel, type RelayTunnel } from '../../../src/ssh/relay.js';
import { isListeningOn, SshTestBed } from './ssh-hosts.js';
import { connectAndWait, randomPayload, sendThrough, sha256, startHashingServer } from './tcp-peers.js';

let bed: SshTestBed;
let pool: SshPool;

beforeAll(async () => {
  bed = await SshTestBed.start([
    { name: 'source' },
    { name: 'target' },
    { name: 'locked', allowTcpForwarding: false },
  ]);
  pool = new SshPool();
});

afterAll(async () => {
  await pool?.close();
  await bed?.stop();
});

async function connections(): Promise<{ source: SshConnection; target: SshConnection; release(): void }> {
  const source = await pool.acquire(bed.host('source').target);
  const target = await pool.acquire(bed.host('target').target);
  return {
    source: source.connection,
    target: target.connection,
    release: () => {
      source.release();
      target.release();
    },
  };
}

describe('openRelayTunnel', () => {
  it('carries and counts bytes both ways', async () => {
    const back = randomPayload(2 * 1024 * 1024);
    const server = await startHashingServer(back);
    const { source, target, release } = await connections();
    let tunnel: RelayTunnel | undefined;
    try {
      tunnel = await openRelayTunnel(source, target, { host: '127.0.0.1', port: server.port });
      expect(tunnel.port).toBeGreaterThan(0);
      expect(await isListeningOn('127.0.0.1', tunnel.port)).toBe(true);

      const updates: number[] = [];
      tunnel.onBytes((forward) => updates.push(forward));
      const forward = randomPayload(6 * 1024 * 1024 + 123);
      const returned = await sendThrough(tunnel.port, forward);
      const arrived = await server.received[0];

      expect(arrived).toEqual({ bytes: forward.length, sha256: sha256(forward) });
      expect(returned).toEqual({ bytes: back.length, sha256: sha256(back) });
      expect(tunnel.bytesForward).toBe(forward.length);
      expect(tunnel.bytesBack).toBe(back.length);
      expect(tunnel.connections).toBe(1);
      expect(tunnel.lastError).toBeUndefined();
      expect(updates.length).toBeGreaterThan(0);
      expect(updates[updates.length - 1]).toBe(forward.length);
    } finally {
      await tunnel?.close();
      release();
      await server.close();
    }
  });

  it('shares one pooled connection', async () => {
    const first = await startHashingServer();
    const second = await startHashingServer();
    const { source, target, release } = await connections();
    const handshakes = pool.handshakes;
    const tunnels: RelayTunnel[] = [];
    try {
      tunnels.push(await openRelayTunnel(source, target, { host: '127.0.0.1', port: first.port }));
      tunnels.push(await openRelayTunnel(source, target, { host: '127.0.0.1', port: second.port }));
      const [one, two] = tunnels as [RelayTunnel, RelayTunnel];
      expect(one.port).not.toBe(two.port);

      const payloadOne = randomPayload(3 * 1024 * 1024);
      const payloadTwo = randomPayload(2 * 1024 * 1024 + 7);
      await Promise.all([sendThrough(one.port, payloadOne), sendThrough(two.port, payloadTwo)]);

      expect(await first.received[0]).toEqual({ bytes: payloadOne.length, sha256: sha256(payloadOne) });
      expect(await second.received[0]).toEqual({ bytes: payloadTwo.length, sha256: sha256(payloadTwo) });
      expect(one.bytesForward).toBe(payloadOne.length);
      expect(two.bytesForward).toBe(payloadTwo.length);
      expect(pool.handshakes).toBe(handshakes);

      // Closing one tunnel leaves the other working.
      await one.close();
      expect(await isListeningOn('127.0.0.1', one.port)).toBe(false);
      await sendThrough(two.port, Buffer.from('still here'));
      expect(await second.received[1]).toMatchObject({ bytes: 10 });
    } finally {
      for (const tunnel of tunnels) await tunnel.close();
      release();
      await first.close();
      await second.close();
    }
  });

  it('holds back a sender when stalled', async () => {
    const server = await startHashingServer(Buffer.alloc(0), { paused: true });
    const { source, target, release } = await connections();
    const tunnel = await openRelayTunnel(source, target, { host: '127.0.0.1', port: server.port });
    try {
      const payload = randomPayload(96 * 1024 * 1024);
      const sending = sendThrough(tunnel.port, payload);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      // With the receiver paused, only what fits in socket buffers and SSH windows moves.
      expect(tunnel.bytesForward).toBeGreaterThan(0);
      expect(tunnel.bytesForward).toBeLessThan(48 * 1024 * 1024);

      for (const socket of server.sockets) socket.resume();
      await sending;
      expect(await server.received[0]).toEqual({ bytes: payload.length, sha256: sha256(payload) });
      expect(tunnel.bytesForward).toBe(payload.length);
    } finally {
      await tunnel.close();
      release();
      await server.close();
    }
  });

  it('moves 256 MiB at a measured rate', async () => {
    const server = await startHashingServer();
    const { source, target, release } = await connections();
    const tunnel = await openRelayTunnel(source, target, { host: '127.0.0.1', port: server.port });
    try {
      const chunk = randomPayload(4 * 1024 * 1024);
      const total = 256 * 1024 * 1024;
      const started = process.hrtime.bigint();
      await new Promise<void>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: tunnel.port });
        let written = 0;
        const writeMore = (): void => {
          while (written < total) {
            written += chunk.length;
            if (!socket.write(chunk)) {
              socket.once('drain', writeMore);
              return;
            }
          }
          socket.end();
        };
        socket.on('connect', writeMore);
        socket.on('error', reject);
        socket.on('close', () => resolve());
      });
      const arrived = await server.received[0];
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      expect(arrived?.bytes).toBe(total);
      // Client, server and bastion share this process, so the rate understates the tunnel alone.
      const rate = (total / 1e6 / seconds).toFixed(0);
      console.log(
        `relay tunnel, endpoints in-process: ${total / 1024 / 1024} MiB in ${seconds.toFixed(2)} s = ${rate} MB/s`,
      );
    } finally {
      await tunnel.close();
      release();
      await server.close();
    }
  });

  it('rejects a source without forwarding', async () => {
    const locked = await pool.acquire(bed.host('locked').target);
    const target = await pool.acquire(bed.host('target').target);
    try {
      const error = await openRelayTunnel(locked.connection, target.connection, {
        host: '127.0.0.1',
        port: 9,
      }).then(
        () => undefined,
        (cause: unknown) => cause,
      );
      expect(isFerryError(error, 'FORWARDING_PROHIBITED')).toBe(true);
      expect((error as Error).message).toContain("'locked'");
      expect((error as Error).message).toContain('AllowTcpForwarding');
      // Logins and commands still work on that host.
      expect((await locked.connection.exec(['true'])).code).toBe(0);
    } finally {
      locked.release();
      target.release();
    }
  });

  it('rejects connections to a closed port', async () => {
    const closedPort = await startHashingServer().then(async (server) => {
      await server.close();
      return server.port;
    });
    const { source, target, release } = await connections();
    const tunnel = await openRelayTunnel(source, target, { host: '127.0.0.1', port: closedPort });
    try {
      const outcome = await connectAndWait(tunnel.port);
      expect(outcome.bytes).toBe(0);
      expect(tunnel.connections).toBe(0);
      expect(tunnel.rejectedConnections).toBe(1);
      expect(tunnel.lastError?.code).toBe('TUNNEL_FAILED');
      expect(tunnel.lastError?.message).toContain(`127.0.0.1:${closedPort}`);
      // The tunnel and the SSH connections survive a refused connection.
      expect(await isListeningOn('127.0.0.1', tunnel.port)).toBe(true);
      expect(source.closed).toBe(false);
    } finally {
      await tunnel.close();
      release();
    }
  });

  it('records a target without forwarding', async () => {
    const source = await pool.acquire(bed.host('source').target);
    const locked = await pool.acquire(bed.host('locked').target);
    const tunnel = await openRelayTunnel(source.connection, locked.connection, {
      host: '127.0.0.1',
      port: 9,
    });
    try {
      await connectAndWait(tunnel.port);
      expect(tunnel.lastError?.code).toBe('FORWARDING_PROHIBITED');
    } finally {
      await tunnel.close();
      source.release();
      locked.release();
    }
  });

  it('leaves nothing listening after close', async () => {
    const server = await startHashingServer();
    const { source, target, release } = await connections();
    try {
      const tunnel = await openRelayTunnel(source, target, { host: '127.0.0.1', port: server.port });
      const port = tunnel.port;
      expect(await isListeningOn('127.0.0.1', port)).toBe(true);
      await tunnel.close();
      await tunnel.close();
      expect(await isListeningOn('127.0.0.1', port)).toBe(false);
      expect(server.received).toHaveLength(0);
    } finally {
      release();
      await server.close();
    }
  });

  it('closes open connections on close', async () => {
    const server = await startHashingServer();
    const { source, target, release } = await connections();
    const tunnel = await openRelayTunnel(source, target, { host: '127.0.0.1', port: server.port });
    try {
      const client = connect({ host: '127.0.0.1', port: tunnel.port });
      const clientClosed = new Promise((resolve) => client.on('close', resolve));
      client.on('error', () => undefined);
      client.write('partial stream');
      await expect.poll(() => tunnel.bytesForward).toBe(14);
      await tunnel.close();
      await clientClosed;
      expect(await server.received[0]).toMatchObject({ bytes: 14 });
    } finally {
      release();
      await server.close();
    }
  });

  it('stops when the source connection drops', async () => {
    const server = await startHashingServer();
    const source = await SshConnection.connect(bed.host('source').target);
    const { target, release } = await connections();
    const tunnel = await openRelayTunnel(source, target, { host: '127.0.0.1', port: server.port });
    try {
      source.destroy();
      await expect.poll(() => tunnel.lastError?.code, { timeout: 3000 }).toBe('SSH_DISCONNECTED');
      await expect.poll(() => isListeningOn('127.0.0.1', tunnel.port), { timeout: 3000 }).toBe(false);
    } finally {
      await tunnel.close();
      release();
      await server.close();
    }
  });
});

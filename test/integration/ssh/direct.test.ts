import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { isFerryError, type FerryError } from '../../../src/errors.js';
import { generateKeyPair, type KeyPair } from '../../../src/lab/keys.js';
import { isAlive } from '../../../src/lab/processes.js';
import { SshConnection } from '../../../src/ssh/connection.js';
import { openDirectTunnel, type DirectTunnel, type DirectTunnelSpec } from '../../../src/ssh/direct.js';
import { isListeningOn, SshTestBed } from './ssh-hosts.js';
import {
  connectAndWait,
  randomPayload,
  sendThrough,
  sha256,
  startHashingServer,
  type HashingServer,
} from './tcp-peers.js';

let bed: SshTestBed;
let source: SshConnection;
let hypervisorKey: KeyPair;
let knownHosts: string;
let server: HashingServer;

beforeAll(async () => {
  bed = await SshTestBed.start([{ name: 'source' }, { name: 'target' }]);
  const account = bed.account;

  // The source host's own credentials for the source -> target hop, readable by the login account.
  const hostDir = join(bed.dir, 'source-ssh');
  mkdirSync(hostDir, { mode: 0o755 });
  hypervisorKey = generateKeyPair(join(hostDir, 'id_ed25519'), 'hypervisor');
  chownSync(hypervisorKey.privatePath, account.uid, account.gid);
  bed.authorize(hypervisorKey.publicLine);
  const targetHost = bed.host('target');
  knownHosts = join(hostDir, 'known_hosts');
  writeFileSync(knownHosts, `[${targetHost.address}]:${targetHost.port} ${targetHost.hostKey.publicLine}\n`, {
    mode: 0o644,
  });

  source = await SshConnection.connect(bed.host('source').target);
  server = await startHashingServer();
});

afterAll(async () => {
  await source?.close();
  await server?.close();
  await bed?.stop();
});

const openTunnels: DirectTunnel[] = [];
const blockers: Server[] = [];

afterEach(async () => {
  for (const tunnel of openTunnels.splice(0)) await tunnel.close();
  for (const blocker of blockers.splice(0)) await new Promise((resolve) => blocker.close(resolve));
  await expect.poll(() => bed.sessionProcesses(), { timeout: 5000 }).toEqual([]);
});

function spec(overrides: Partial<DirectTunnelSpec> = {}): DirectTunnelSpec {
  const targetHost = bed.host('target');
  return {
    sshPath: '/usr/bin/ssh',
    identityFile: hypervisorKey.privatePath,
    knownHostsFile: knownHosts,
    targetAddress: targetHost.address,
    targetSshPort: targetHost.port,
    targetUser: bed.account.user,
    remotePort: server.port,
    ...overrides,
  };
}

async function open(
  connection: SshConnection,
  overrides: Partial<DirectTunnelSpec> = {},
): Promise<DirectTunnel> {
  const tunnel = await openDirectTunnel(connection, spec(overrides));
  openTunnels.push(tunnel);
  return tunnel;
}

async function failure(overrides: Partial<DirectTunnelSpec>): Promise<FerryError> {
  const error = await openDirectTunnel(source, spec(overrides)).then(
    (tunnel) => {
      openTunnels.push(tunnel);
      return undefined;
    },
    (cause: unknown) => cause,
  );
  if (!isFerryError(error)) throw new Error(`expected a FerryError, got ${String(error)}`);
  return error;
}

/** Occupies 127.0.0.1:port so that ssh's bind fails there. */
async function block(port: number): Promise<void> {
  const blocker = createServer();
  await new Promise<void>((resolve, reject) => {
    blocker.once('error', reject);
    blocker.listen(port, '127.0.0.1', resolve);
  });
  blockers.push(blocker);
}

/** Creates a debug logger that keeps the message of each record in memory. */
function memoryLogger(): { logger: pino.Logger; messages: string[] } {
  const messages: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      messages.push((JSON.parse(chunk.toString()) as { msg: string }).msg);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), messages };
}

describe('openDirectTunnel', () => {
  it('carries bytes to the target port', async () => {
    const tunnel = await open(source);
    expect(tunnel.port).toBeGreaterThanOrEqual(20_000);
    expect(tunnel.port).toBeLessThanOrEqual(29_999);
    expect(isAlive(tunnel.remotePid)).toBe(true);
    expect(await isListeningOn('127.0.0.1', tunnel.port)).toBe(true);

    const payload = randomPayload(4 * 1024 * 1024 + 5);
    const before = server.received.length;
    await sendThrough(tunnel.port, payload);
    expect(await server.received[before]).toEqual({ bytes: payload.length, sha256: sha256(payload) });
    expect(tunnel.lastError).toBeUndefined();
  });

  it('ends the ssh process on close', async () => {
    const tunnel = await open(source);
    const pid = tunnel.remotePid;
    await tunnel.close();
    await tunnel.close();
    expect(isAlive(pid)).toBe(false);
    expect(await isListeningOn('127.0.0.1', tunnel.port)).toBe(false);
  });

  it('kills an ssh that ignores SIGTERM', async () => {
    // A stand-in for ssh that reports a ready forward and then ignores SIGTERM.
    const stubborn = join(bed.dir, 'source-ssh', 'stubborn-ssh');
    const script = [
      '#!/bin/sh',
      "trap '' TERM",
      'for arg in "$@"; do case $arg in 127.0.0.1:*) port=${arg#127.0.0.1:}; port=${port%%:*} ;; esac; done',
      'echo "debug1: Local forwarding listening on 127.0.0.1 port $port." >&2',
      'echo "debug1: Entering interactive session." >&2',
      'while :; do sleep 1; done',
    ].join('\n');
    writeFileSync(stubborn, `${script}\n`, { mode: 0o755 });

    const tunnel = await openDirectTunnel(source, spec({ sshPath: stubborn }));
    const pid = tunnel.remotePid;
    expect(isAlive(pid)).toBe(true);
    await tunnel.close();
    expect(isAlive(pid)).toBe(false);
  });

  it('times out a silent ssh', async () => {
    // A stand-in for ssh that never reports a forward.
    const silent = join(bed.dir, 'source-ssh', 'silent-ssh');
    writeFileSync(silent, '#!/bin/sh\nwhile :; do sleep 1; done\n', { mode: 0o755 });

    const started = Date.now();
    const error = await failure({ sshPath: silent, readyTimeoutMs: 1000 });
    expect(error.code).toBe('SSH_TIMEOUT');
    expect(error.message).toContain('1000 ms');
    expect(Date.now() - started).toBeLessThan(8000);
  });

  it('picks another port when one is taken', async () => {
    const base = 20_000 + Math.floor(Math.random() * 9000);
    await block(base);
    const { logger, messages } = memoryLogger();
    // The first pick is random, so repeat until the taken port was tried at least once.
    for (
      let round = 0;
      round < 30 && !messages.includes('Direct tunnel port in use, trying another');
      round += 1
    ) {
      const tunnel = await open(source, { localPortRange: [base, base + 1], maxPortTries: 2, logger });
      expect(tunnel.port).toBe(base + 1);
      await tunnel.close();
    }
    expect(messages).toContain('Direct tunnel port in use, trying another');
  });

  it('fails when every port is taken', async () => {
    const base = 20_000 + Math.floor(Math.random() * 9000);
    await block(base);
    await block(base + 1);
    const error = await failure({ localPortRange: [base, base + 1] });
    expect(error.code).toBe('TUNNEL_PORT_TAKEN');
    expect(error.message).toContain(`${base}-${base + 1}`);
  });

  it('rejects an unknown target key', async () => {
    const empty = join(bed.dir, 'source-ssh', 'known_hosts_empty');
    writeFileSync(empty, '', { mode: 0o644 });
    const error = await failure({ knownHostsFile: empty });
    expect(error.code).toBe('HOST_KEY_UNKNOWN');
    expect(error.message).toContain(empty);
    expect(error.context).toMatchObject({ host: 'source', phase: 'tunnel' });
  });

  it('rejects a changed target key', async () => {
    const wrong = join(bed.dir, 'source-ssh', 'known_hosts_wrong');
    const targetHost = bed.host('target');
    writeFileSync(
      wrong,
      `[${targetHost.address}]:${targetHost.port} ${bed.host('source').hostKey.publicLine}\n`,
      {
        mode: 0o644,
      },
    );
    const error = await failure({ knownHostsFile: wrong });
    expect(error.code).toBe('HOST_KEY_MISMATCH');
  });

  it('rejects a refused source key', async () => {
    const error = await failure({ identityFile: join(bed.dir, 'source-ssh', 'missing_key') });
    expect(error.code).toBe('AUTH_FAILED');
    expect(error.message).toContain('missing_key');
  });

  it('records a refused target port', async () => {
    const closed = await startHashingServer();
    await closed.close();
    const tunnel = await open(source, { remotePort: closed.port });
    const outcome = await connectAndWait(tunnel.port);
    expect(outcome.bytes).toBe(0);
    await expect.poll(() => tunnel.lastError?.code, { timeout: 3000 }).toBe('TUNNEL_FAILED');
    expect(tunnel.lastError?.message).toContain('Connection refused');
  });

  it('ends ssh when the source drops', async () => {
    const connection = await SshConnection.connect(bed.host('source').target);
    const tunnel = await openDirectTunnel(connection, spec());
    const pid = tunnel.remotePid;
    expect(isAlive(pid)).toBe(true);

    connection.destroy();
    await expect.poll(() => isAlive(pid), { timeout: 5000 }).toBe(false);
    await expect.poll(() => isListeningOn('127.0.0.1', tunnel.port), { timeout: 5000 }).toBe(false);
    expect(tunnel.lastError?.code).toBe('SSH_DISCONNECTED');
    await tunnel.close();
  });

  it('rejects an invalid port range', async () => {
    const error = await failure({ localPortRange: [30_000, 20_000] });
    expect(error.code).toBe('INVALID_CONFIG');
  });
});

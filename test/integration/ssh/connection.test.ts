import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isFerryError, type FerryError } from '../../../src/errors.js';
import { generateKeyPair } from '../../../src/lab/keys.js';
import { findFreePort } from '../../../src/lab/ports.js';
import { SshConnection, type SshTarget } from '../../../src/ssh/connection.js';
import { SshPool } from '../../../src/ssh/pool.js';
import { SshTestBed } from './ssh-hosts.js';

let bed: SshTestBed;

beforeAll(async () => {
  bed = await SshTestBed.start([{ name: 'alpha' }, { name: 'beta' }, { name: 'gamma' }]);
});

afterAll(async () => {
  await bed?.stop();
});

function target(name: string, overrides: Partial<SshTarget> = {}): SshTarget {
  return { ...bed.host(name).target, ...overrides };
}

/** Runs `action`, which must throw, and returns what it threw. */
async function thrownBy(action: () => Promise<unknown>): Promise<FerryError> {
  try {
    await action();
  } catch (error) {
    if (!isFerryError(error)) throw error;
    return error;
  }
  throw new Error('expected the action to throw a FerryError');
}

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

describe('SshConnection.exec', () => {
  let connection: SshConnection;

  beforeAll(async () => {
    connection = await SshConnection.connect(target('alpha'));
  });

  afterAll(async () => {
    await connection?.close();
  });

  it('returns stdout, stderr and the exit code', async () => {
    const result = await connection.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(result).toEqual({ stdout: 'out\n', stderr: 'err\n', code: 3, signal: null });
  });

  it('passes shell metacharacters byte-exact', async () => {
    const hostile = `a'b"c $(touch /tmp/ferry-pwned) \`id\` ; rm -rf / && echo | cat > x < y * ? ~ # ! \\ \n\t end`;
    const result = await connection.exec(['printf', '%s', hostile]);
    expect(result.stdout).toBe(hostile);
    expect(result.code).toBe(0);
  });

  it('keeps the status of instant commands', async () => {
    // ssh2 can parse the exit status in the same read as the open confirmation, before the
    // caller attached listeners. A lost status used to surface as SSH_DISCONNECTED.
    const results = await Promise.all(Array.from({ length: 40 }, () => connection.exec(['true'])));
    expect(results.map((result) => result.code)).toEqual(Array.from({ length: 40 }, () => 0));
    const failing = await Promise.all(Array.from({ length: 20 }, () => connection.exec(['false'])));
    expect(failing.map((result) => result.code)).toEqual(Array.from({ length: 20 }, () => 1));
  });

  it('writes stdin to the command', async () => {
    const result = await connection.exec(['cat'], { stdin: 'line one\nline two\n' });
    expect(result.stdout).toBe('line one\nline two\n');
  });

  it('closes stdin when none is given', async () => {
    const result = await connection.exec(['cat'], { timeoutMs: 5000 });
    expect(result).toMatchObject({ stdout: '', code: 0 });
  });

  it('throws COMMAND_FAILED for an exit outside okCodes', async () => {
    const error = await thrownBy(() =>
      connection.exec(['sh', '-c', 'echo broken >&2; exit 2'], { okCodes: [0] }),
    );
    expect(error.code).toBe('COMMAND_FAILED');
    expect(error.message).toContain('exited with code 2');
    expect(error.message).toContain('broken');
    const allowed = await connection.exec(['sh', '-c', 'exit 1'], { okCodes: [0, 1] });
    expect(allowed.code).toBe(1);
  });

  it('times out with SSH_TIMEOUT and stops the command', async () => {
    const started = Date.now();
    const error = await thrownBy(() => connection.exec(['sleep', '30'], { timeoutMs: 300 }));
    expect(error.code).toBe('SSH_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(2000);
    await expect.poll(() => bed.sessionProcesses(), { timeout: 3000 }).toEqual([]);
  });

  it('rejects with the reason of an aborted signal', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('cancelled by test')), 200);
    await expect(connection.exec(['sleep', '30'], { signal: controller.signal })).rejects.toThrow(
      'cancelled by test',
    );
    await expect.poll(() => bed.sessionProcesses(), { timeout: 3000 }).toEqual([]);
  });

  it('queues commands beyond MaxSessions', async () => {
    // sshd's MaxSessions is 10; twenty-five concurrent commands must all succeed.
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, index) => connection.exec(['sh', '-c', `sleep 0.1; echo ${index}`])),
    );
    expect(results.map((result) => result.stdout.trim())).toEqual(
      Array.from({ length: 25 }, (_, index) => `${index}`),
    );
    expect(connection.openSessions).toBe(0);
  });

  it('stops output beyond maxOutputBytes', async () => {
    const error = await thrownBy(() => connection.exec(['yes'], { maxOutputBytes: 100_000 }));
    expect(error.code).toBe('COMMAND_FAILED');
    expect(error.message).toContain('100000 bytes');
    await expect.poll(() => bed.sessionProcesses(), { timeout: 3000 }).toEqual([]);
  });

  it('reports a signal that killed the command', async () => {
    const result = await connection.exec(['sh', '-c', 'kill -TERM $$']);
    expect(result).toMatchObject({ code: null, signal: 'SIGTERM' });
  });
});

describe('SshConnection.connect', () => {
  it('rejects a wrong pin before authentication', async () => {
    const before = bed.host('beta').sshd.log;
    const wrongPin = bed.host('alpha').hostKey.fingerprint;
    const error = await thrownBy(() => SshConnection.connect(target('beta', { hostKey: wrongPin })));

    expect(error.code).toBe('HOST_KEY_MISMATCH');
    expect(error.message).toContain("'beta'");
    expect(error.message).toContain(wrongPin);
    expect(error.message).toContain(bed.host('beta').hostKey.fingerprint);
    expect(error.message).toMatch(/update hostKey/);
    expect(error.context).toMatchObject({ host: 'beta', presented: bed.host('beta').hostKey.fingerprint });

    // Give sshd a moment to log the dropped connection, then check it never authenticated.
    await expect.poll(() => bed.host('beta').sshd.log.length > before.length, { timeout: 2000 }).toBe(true);
    const after = bed.host('beta').sshd.log;
    expect(count(after, 'Accepted publickey')).toBe(count(before, 'Accepted publickey'));
    expect(count(after, 'Starting session')).toBe(count(before, 'Starting session'));
  });

  it('rejects a host without pin', async () => {
    const error = await thrownBy(() => SshConnection.connect(target('beta', { hostKey: undefined })));
    expect(error.code).toBe('HOST_KEY_UNKNOWN');
    expect(error.message).toContain(bed.host('beta').hostKey.fingerprint);
  });

  it('rejects a host missing from known_hosts', async () => {
    const path = join(bed.dir, 'known_hosts_other');
    const alpha = bed.host('alpha');
    writeFileSync(path, `[${alpha.address}]:${alpha.port} ${alpha.hostKey.publicLine}\n`);
    const error = await thrownBy(() =>
      SshConnection.connect(target('beta', { hostKey: undefined, knownHostsFile: path })),
    );
    expect(error.code).toBe('HOST_KEY_UNKNOWN');
    expect(error.message).toContain(path);
  });

  it('accepts a host listed in known_hosts', async () => {
    const path = join(bed.dir, 'known_hosts_beta');
    const beta = bed.host('beta');
    writeFileSync(path, `# test\nbeta,[${beta.address}]:${beta.port} ${beta.hostKey.publicLine}\n`);
    const connection = await SshConnection.connect(
      target('beta', { hostKey: undefined, knownHostsFile: path }),
    );
    expect((await connection.exec(['true'])).code).toBe(0);
    await connection.close();
  });

  it('rejects a revoked known_hosts key', async () => {
    const path = join(bed.dir, 'known_hosts_revoked');
    const beta = bed.host('beta');
    const entry = `[${beta.address}]:${beta.port} ${beta.hostKey.publicLine}`;
    writeFileSync(path, `${entry}\n@revoked ${entry}\n`);
    const error = await thrownBy(() =>
      SshConnection.connect(target('beta', { hostKey: undefined, knownHostsFile: path })),
    );
    expect(error.code).toBe('HOST_KEY_MISMATCH');
    expect(error.message).toContain('@revoked');
  });

  it('rejects an unauthorized key', async () => {
    const dir = join(bed.dir, 'stranger');
    mkdirSync(dir, { mode: 0o700 });
    const stranger = generateKeyPair(join(dir, 'id_ed25519'), 'stranger');
    const error = await thrownBy(() =>
      SshConnection.connect(target('beta', { identityFile: stranger.privatePath })),
    );
    expect(error.code).toBe('AUTH_FAILED');
    expect(error.message).toContain(stranger.privatePath);
  });

  it('names a missing identity file', async () => {
    const missing = join(bed.dir, 'no-such-key');
    const error = await thrownBy(() => SshConnection.connect(target('beta', { identityFile: missing })));
    expect(error.code).toBe('AUTH_FAILED');
    expect(error.message).toContain(`${missing} does not exist`);
  });

  it('rejects a file that holds no private key', async () => {
    const error = await thrownBy(() =>
      SshConnection.connect(target('beta', { identityFile: bed.clientKey.publicPath })),
    );
    expect(error.code).toBe('AUTH_FAILED');
    expect(error.message).toContain(bed.clientKey.publicPath);
  });

  it('fails when nothing listens', async () => {
    const port = await findFreePort('127.0.0.1');
    const error = await thrownBy(() => SshConnection.connect(target('beta', { address: '127.0.0.1', port })));
    expect(error.code).toBe('SSH_CONNECT_FAILED');
    expect(error.message).toContain('connection refused');
    expect(error.retryable).toBe(true);
  });

  it('times out a stalled handshake', async () => {
    // A server that accepts TCP connections and never sends an SSH banner.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const started = Date.now();
      const error = await thrownBy(() =>
        SshConnection.connect(target('beta', { address: '127.0.0.1', port }), { readyTimeoutMs: 400 }),
      );
      expect(error.code).toBe('SSH_TIMEOUT');
      expect(error.message).toContain('400 ms');
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('rejects invalid options', async () => {
    const error = await thrownBy(() => SshConnection.connect(target('beta'), { readyTimeoutMs: -1 }));
    expect(error.code).toBe('INVALID_CONFIG');
    expect(error.message).toContain('readyTimeoutMs');
  });

  it('rejects with the reason when aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop now'));
    await expect(SshConnection.connect(target('beta'), { signal: controller.signal })).rejects.toThrow(
      'stop now',
    );
  });
});

describe('SshConnection close', () => {
  it('emits close without a reason after close()', async () => {
    const connection = await SshConnection.connect(target('beta'));
    const reasons: Array<FerryError | undefined> = [];
    connection.on('close', (reason) => reasons.push(reason));
    await connection.close();
    await connection.close();
    expect(connection.closed).toBe(true);
    expect(reasons).toEqual([undefined]);
    const error = await thrownBy(() => connection.exec(['true']));
    expect(error.code).toBe('SSH_DISCONNECTED');
  });

  it('fails commands when sshd dies', async () => {
    const connection = await SshConnection.connect(target('gamma'));
    const closed = new Promise<FerryError | undefined>((resolve) => connection.once('close', resolve));
    const running = thrownBy(() => connection.exec(['sleep', '30']));
    await new Promise((resolve) => setTimeout(resolve, 200));
    await bed.host('gamma').sshd.kill();

    const error = await running;
    expect(error.code).toBe('SSH_DISCONNECTED');
    const reason = await closed;
    expect(reason?.code).toBe('SSH_DISCONNECTED');
    expect(connection.closed).toBe(true);
  });
});

describe('SshPool', () => {
  it('reuses one handshake for two acquires', async () => {
    const pool = new SshPool();
    try {
      const first = await pool.acquire(target('alpha'));
      const second = await pool.acquire(target('alpha'));
      expect(second.connection).toBe(first.connection);
      expect(pool.handshakes).toBe(1);
      first.release();
      second.release();
      second.release();
      const third = await pool.acquire(target('alpha'));
      expect(third.connection).toBe(first.connection);
      expect(pool.handshakes).toBe(1);
      third.release();
    } finally {
      await pool.close();
    }
  });

  it('shares one connect among concurrent acquires', async () => {
    const pool = new SshPool();
    try {
      const leases = await Promise.all([1, 2, 3, 4].map(() => pool.acquire(target('alpha'))));
      expect(new Set(leases.map((lease) => lease.connection)).size).toBe(1);
      expect(pool.handshakes).toBe(1);
      for (const lease of leases) lease.release();
    } finally {
      await pool.close();
    }
  });

  it('closes an idle connection and reconnects', async () => {
    const pool = new SshPool({ idleTimeoutMs: 200 });
    try {
      const lease = await pool.acquire(target('alpha'));
      const first = lease.connection;
      lease.release();
      await expect.poll(() => first.closed, { timeout: 3000 }).toBe(true);
      expect(pool.size).toBe(0);

      const next = await pool.acquire(target('alpha'));
      expect(next.connection).not.toBe(first);
      expect(pool.handshakes).toBe(2);
      expect((await next.connection.exec(['true'])).code).toBe(0);
      next.release();
    } finally {
      await pool.close();
    }
  });

  it('keeps leased connections open', async () => {
    const pool = new SshPool({ idleTimeoutMs: 100 });
    try {
      const lease = await pool.acquire(target('alpha'));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(lease.connection.closed).toBe(false);
      lease.release();
    } finally {
      await pool.close();
    }
  });

  it('reconnects after the connection closed', async () => {
    const pool = new SshPool();
    try {
      const lease = await pool.acquire(target('alpha'));
      lease.connection.destroy();
      lease.release();
      await expect.poll(() => lease.connection.closed).toBe(true);
      const next = await pool.acquire(target('alpha'));
      expect(next.connection).not.toBe(lease.connection);
      expect(pool.handshakes).toBe(2);
      next.release();
    } finally {
      await pool.close();
    }
  });

  it('replaces a connection after a pin change', async () => {
    const pool = new SshPool();
    try {
      const lease = await pool.acquire(target('alpha'));
      const wrongPin = bed.host('beta').hostKey.fingerprint;
      const error = await thrownBy(() => pool.acquire(target('alpha', { hostKey: wrongPin })));
      expect(error.code).toBe('HOST_KEY_MISMATCH');

      // The old connection serves its lease holder until release, then closes.
      expect(lease.connection.closed).toBe(false);
      expect((await lease.connection.exec(['true'])).code).toBe(0);
      lease.release();
      await expect.poll(() => lease.connection.closed, { timeout: 3000 }).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('replaces a connection after an address change', async () => {
    const pool = new SshPool();
    try {
      const lease = await pool.acquire(target('alpha'));
      lease.release();
      // Same name, now pointing at beta's sshd with beta's pin: a new handshake to beta.
      const beta = bed.host('beta');
      const moved = await pool.acquire(
        target('alpha', { address: beta.address, port: beta.port, hostKey: beta.hostKey.fingerprint }),
      );
      expect(moved.connection).not.toBe(lease.connection);
      expect(pool.handshakes).toBe(2);
      await expect.poll(() => lease.connection.closed, { timeout: 3000 }).toBe(true);
      moved.release();
    } finally {
      await pool.close();
    }
  });

  it('closes connections on close', async () => {
    const pool = new SshPool();
    const lease = await pool.acquire(target('alpha'));
    await pool.close();
    expect(lease.connection.closed).toBe(true);
    const error = await thrownBy(() => pool.acquire(target('alpha')));
    expect(error.code).toBe('SSH_DISCONNECTED');
  });

  it('passes connect errors to waiters', async () => {
    const pool = new SshPool();
    try {
      const port = await findFreePort('127.0.0.1');
      const nowhere = target('alpha', { name: 'nowhere', address: '127.0.0.1', port });
      const results = await Promise.allSettled([1, 2].map(() => pool.acquire(nowhere)));
      expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
      for (const result of results) {
        const reason: unknown = result.status === 'rejected' ? result.reason : undefined;
        expect(isFerryError(reason, 'SSH_CONNECT_FAILED')).toBe(true);
      }
      expect(pool.handshakes).toBe(0);

      // A failed connect is not cached: the next acquire tries again.
      await expect(pool.acquire(nowhere)).rejects.toMatchObject({ code: 'SSH_CONNECT_FAILED' });
    } finally {
      await pool.close();
    }
  });
});

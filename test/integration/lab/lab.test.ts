import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';

import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadInventory } from '../../../src/config/inventory.js';
import { Lab } from '../../../src/lab/lab.js';
import { isListening } from '../../../src/lab/ports.js';
import { isAlive } from '../../../src/lab/processes.js';
import { startRedis } from '../../../src/lab/redis.js';

const run = promisify(execFile);

/** Runs a command on a lab host through its real sshd with the OpenSSH client. */
async function sshRun(lab: Lab, hostName: string, command: string, extra: string[] = [], identity?: string) {
  const host = lab.host(hostName);
  const args = [
    '-i',
    identity ?? lab.bastionKey.privatePath,
    '-p',
    String(host.sshPort),
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${host.stateDir}/ssh/known_hosts`,
    ...extra,
    `${lab.account.user}@${host.address}`,
    command,
  ];
  return run('ssh', args, { timeout: 20_000 }).then(
    (output) => ({ ...output, code: 0 }),
    (error: { stdout: string; stderr: string; code: number }) => error,
  );
}

describe('lab hosts', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.start({
      redis: false,
      hosts: [
        {
          name: 'xen-a',
          domains: [
            {
              name: 'web01',
              memoryMiB: 512,
              vcpus: 1,
              disks: ['file:/srv/xen/web01.img'],
              vifs: [{ bridge: 'xenbr0' }],
            },
          ],
        },
        { name: 'xen-b' },
        { name: 'xen-c', allowTcpForwarding: false },
      ],
    });
  });

  afterAll(async () => {
    await lab?.stop();
  });

  it('gives each host its own loopback address', () => {
    expect(lab.hosts.map((host) => host.address)).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    expect(lab.names.reverse('127.0.0.3')).toBe('xen-b');
    expect(lab.names.reverse('127.0.0.1')).toBe('localhost');
  });

  it('runs xm through sshd as the non-root account', async () => {
    const host = lab.host('xen-a');
    const output = await sshRun(lab, 'xen-a', `id -un; ${host.sim.xmPath} list`);
    expect(output.code).toBe(0);
    expect(output.stdout).toMatch(/^ferrylab\n|^\w+\n/);
    expect(output.stdout).toContain('Domain-0');
    expect(output.stdout).toMatch(/^web01\s+\d+\s+512\s+1\s+/m);
  });

  it('refuses a direct untunnelled migration by the default allow list', async () => {
    const source = lab.host('xen-a');
    const target = lab.host('xen-b');
    const output = await sshRun(
      lab,
      'xen-a',
      `${source.sim.xmPath} migrate --live --port=${target.sim.relocationPort} web01 xen-b`,
    );
    expect(output.code).toBe(1);
    expect(output.stderr).toMatch(/^Error: /m);
    expect(target.sim.xendLog()).toContain('Rejected connection from 127.0.0.2 (xen-a).');
    expect(source.sim.domains().find((domain) => domain.name === 'web01')?.state).toBe('-b----');
    expect(target.sim.domains().map((domain) => domain.name)).not.toContain('web01');
  });

  it('applies a hand edit of xend-config.sxp', async () => {
    const host = lab.host('xen-c');
    const path = `${host.stateDir}/xend-config.sxp`;
    const port = host.sim.relocationPort;
    expect(await isListening('127.0.0.1', port)).toBe(true);
    writeFileSync(
      path,
      readFileSync(path, 'utf8').replace(/^\(xend-relocation-server yes\)/m, '(xend-relocation-server no)'),
    );
    const deadline = Date.now() + 5000;
    while ((await isListening('127.0.0.1', port)) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await isListening('127.0.0.1', port)).toBe(false);
  });

  it('writes an inventory whose pins match ssh-keygen', async () => {
    const inventory = loadInventory(lab.inventoryPath);
    expect(inventory.names()).toEqual(['xen-a', 'xen-b', 'xen-c']);
    const host = lab.host('xen-b');
    const { stdout } = await run('ssh-keygen', ['-lf', host.hostKey.publicPath]);
    expect(stdout.split(' ')[1]).toBe(inventory.host('xen-b').hostKey);
    expect(inventory.host('xen-b').relocationPort).toBe(host.sim.relocationPort);
  });

  it('rejects a key that is not authorized', async () => {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', `${lab.dir}/stranger`]);
    const host = lab.host('xen-a');
    const output = await sshRun(lab, 'xen-a', 'true', ['-o', 'IdentitiesOnly=yes'], `${lab.dir}/stranger`);
    expect(output.code).toBe(255);
    expect(output.stderr).toContain('Permission denied (publickey)');
    expect(host.sshd.log).toMatch(/Failed publickey|Connection closed by authenticating user/);
  });

  it('prohibits forwarding on a host with the switch off', async () => {
    const output = await sshRun(lab, 'xen-c', 'sleep 1; true', [
      '-o',
      'ExitOnForwardFailure=yes',
      '-R',
      '127.0.0.1:0:127.0.0.1:9',
    ]);
    expect(output.code).toBe(255);
    expect(output.stderr).toMatch(/remote port forwarding failed|administratively prohibited/);
  });

  it('ends session processes that outlive their session', async () => {
    const output = await sshRun(lab, 'xen-b', 'nohup sleep 300 >/dev/null 2>&1 & echo $!');
    const pid = Number(output.stdout.trim());
    expect(isAlive(pid)).toBe(true);
    expect(lab.sessionProcesses()).toContain(pid);
  });
});

describe('lab clean-up', () => {
  it('leaves no process, port or folder behind', async () => {
    const lab = await Lab.start({ redis: true });
    const sshdPids = lab.hosts.map((host) => host.sshd.pid as number);
    const redisPid = lab.redis?.pid;
    const ports = lab.hosts.map((host) => [host.address, host.sshPort] as const);
    await sshRun(lab, 'xen-a', 'nohup sleep 300 >/dev/null 2>&1 &');
    const sessions = lab.sessionProcesses();
    expect(sessions.length).toBeGreaterThan(0);

    await lab.stop();

    for (const pid of [...sshdPids, ...sessions]) expect(isAlive(pid)).toBe(false);
    if (redisPid !== undefined) expect(isAlive(redisPid)).toBe(false);
    for (const [address, port] of ports) expect(await isListening(address, port, 300)).toBe(false);
    expect(existsSync(lab.dir)).toBe(false);
  });
});

describe('lab redis', () => {
  it('evicts nothing and keeps data across a restart with append-only on', async () => {
    const redis = await startRedis({ appendOnly: true, url: '' });
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
      await client.set('ferry:test', 'kept');
      client.disconnect();
      await redis.restart();
      await client.connect();
      expect(await client.get('ferry:test')).toBe('kept');
    } finally {
      client.disconnect();
      await redis.stop();
    }
    expect(redis.dir).toBeDefined();
    expect(existsSync(redis.dir as string)).toBe(false);
  });

  it('uses REDIS_URL instead of starting a server', async () => {
    const redis = await startRedis({ url: 'redis://127.0.0.1:6390' });
    expect(redis.pid).toBeUndefined();
    expect(redis.url).toBe('redis://127.0.0.1:6390');
    await expect(redis.restart()).rejects.toThrow(/external server/);
  });
});

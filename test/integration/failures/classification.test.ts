import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadInventory, type Inventory } from '../../../src/config/inventory.js';
import { getMigrationStatus } from '../../../src/jobs/producer.js';
import { openMigrationQueue, type MigrationQueue } from '../../../src/jobs/queue.js';
import { Lab } from '../../../src/lab/lab.js';
import { findFreePort } from '../../../src/lab/ports.js';
import { descendantsOf, listeningPortsOf } from '../../../src/lab/processes.js';
import { renderXendConfig } from '../../../src/lab/xen/xend-config.js';
import { createLogger } from '../../../src/log.js';
import { startMigrationWorker, type MigrationWorkerHandle } from '../../../src/migration/worker.js';
import { domain, enqueue, ferryBin, placement, resultOf, waitForTransfer } from './helpers.js';

const run = promisify(execFile);
const quiet = createLogger({ level: 'silent' });

describe('failure classes and cancel', () => {
  let lab: Lab;
  let inventory: Inventory;
  let queue: MigrationQueue;
  let worker: MigrationWorkerHandle;
  const prefix = 'classes';
  const extraWorkers: MigrationWorkerHandle[] = [];

  beforeAll(async () => {
    lab = await Lab.start({
      bytesPerMiB: 4096,
      redis: { appendOnly: true },
      hosts: [
        {
          name: 'xen-a',
          totalMemoryMiB: 16_384,
          domains: [
            ...['web01', 'web02', 'web03', 'web04', 'web05', 'web06'].map((name) => domain(name)),
            domain('big01', 6144),
            domain('long01', 2048),
          ],
          transferRateBytesPerSec: 1_000_000,
        },
        // The allow list accepts xen-a's address but not localhost, where a tunnel arrives.
        {
          name: 'xen-b',
          xendConfig: renderXendConfig({ port: await findFreePort(), hostsAllow: ['^xen-a$'] }),
        },
        { name: 'xen-c', totalMemoryMiB: 16_384 },
        { name: 'xen-d', allowTcpForwarding: false, domains: [domain('db01')] },
      ],
    });
    inventory = loadInventory(lab.inventoryPath);
    queue = await openMigrationQueue({ redisUrl: lab.redis?.url as string, prefix });
    worker = await startMigrationWorker({
      redisUrl: lab.redis?.url as string,
      prefix,
      inventory,
      retryBackoff: { baseDelayMs: 50, maxDelayMs: 200 },
      logger: quiet,
    });
  });

  afterAll(async () => {
    for (const extra of extraWorkers) await extra.close();
    await worker?.close();
    await queue?.close();
    await lab?.stop();
  });

  /** Starts a worker on its own prefix with an inventory changed by `edit`. */
  async function workerWith(
    name: string,
    edit: (hosts: Record<string, Record<string, unknown>>) => void,
    options: { noProgressTimeoutMs?: number } = {},
  ) {
    const data = parseYaml(readFileSync(lab.inventoryPath, 'utf8')) as {
      hosts: Record<string, Record<string, unknown>>;
    };
    edit(data.hosts);
    const path = join(lab.dir, `${name}.yaml`);
    writeFileSync(path, stringifyYaml(data));
    const edited = loadInventory(path);
    const url = lab.redis?.url as string;
    const editedQueue = await openMigrationQueue({ redisUrl: url, prefix: name });
    const handle = await startMigrationWorker({
      redisUrl: url,
      prefix: name,
      inventory: edited,
      retryBackoff: { baseDelayMs: 50, maxDelayMs: 200 },
      logger: quiet,
      ...options,
    });
    extraWorkers.push(handle);
    return { inventory: edited, queue: editedQueue };
  }

  it('fails an allow-list rejection at once as permanent', async () => {
    const result = await resultOf(queue, await enqueue(queue, inventory, 'web01', 'xen-a', 'xen-b'));
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('RELOCATION_REJECTED');
    expect(result.attempts).toBe(1);
    expect(lab.host('xen-b').sim.xendLog()).toContain('Rejected connection from 127.0.0.1 (localhost).');
    expect(placement(lab, 'web01')['xen-a']).toBe('-b----');
  });

  it('fails forwarding prohibited by sshd at once', async () => {
    const result = await resultOf(queue, await enqueue(queue, inventory, 'db01', 'xen-d', 'xen-c'));
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('FORWARDING_PROHIBITED');
    expect(result.attempts).toBe(1);
    expect(placement(lab, 'db01')['xen-d']).toBe('-b----');
  });

  it('fails refused authentication at once', async () => {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(lab.dir, 'stranger')]);
    const edited = await workerWith('auth', (hosts) => {
      (hosts['xen-a'] as Record<string, unknown>).identityFile = join(lab.dir, 'stranger');
    });
    const jobId = await enqueue(edited.queue, edited.inventory, 'web02', 'xen-a', 'xen-c');
    const result = await resultOf(edited.queue, jobId);
    await edited.queue.close();
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('AUTH_FAILED');
    expect(result.attempts).toBe(1);
  });

  it('retries a taken local port in direct mode as transient', async () => {
    const port = await findFreePort();
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const edited = await workerWith('port', (hosts) => {
        const direct = (hosts['xen-a'] as { direct: Record<string, unknown> }).direct;
        direct.localPorts = [port, port];
      });
      const jobId = await enqueue(edited.queue, edited.inventory, 'web02', 'xen-a', 'xen-c', {
        tunnel: 'direct',
        attempts: 2,
      });
      const result = await resultOf(edited.queue, jobId);
      await edited.queue.close();
      expect(result.status).toBe('failed');
      expect(result.error?.code).toBe('TUNNEL_PORT_TAKEN');
      expect(result.attempts).toBe(2);
      expect(placement(lab, 'web02')['xen-a']).toBe('-b----');
    } finally {
      blocker.close();
    }
  });

  it('aborts a stalled transfer with the no-progress watchdog', async () => {
    const edited = await workerWith('watchdog', () => undefined, { noProgressTimeoutMs: 1500 });
    // 24 MiB at 20 MB/s: far more than the SSH windows and socket buffers hold.
    lab.host('xen-a').sim.setTransferRate(20_000_000);
    const jobId = await enqueue(edited.queue, edited.inventory, 'big01', 'xen-a', 'xen-c', { attempts: 1 });
    await waitForTransfer(edited.queue, jobId, 8192);
    // Stopping the target's sshd stalls the tunnel without closing it: no bytes, no error.
    const targetSshd = lab.host('xen-c').sshd.pid as number;
    const stalled = descendantsOf(targetSshd);
    for (const pid of stalled) process.kill(pid, 'SIGSTOP');
    try {
      await new Promise((resolve) => setTimeout(resolve, 3000));
    } finally {
      for (const pid of stalled) process.kill(pid, 'SIGCONT');
      lab.host('xen-a').sim.setTransferRate(1_000_000);
    }
    try {
      const result = await resultOf(edited.queue, jobId);
      expect(result.status).toBe('failed');
      expect(result.error?.code).toBe('NO_PROGRESS');
      expect(placement(lab, 'big01')['xen-a']).toBe('-b----');
      expect(placement(lab, 'big01')['xen-c']).toBeUndefined();
    } finally {
      await edited.queue.close();
    }
  });

  it('cancels a waiting job from another process', async () => {
    const idleQueue = await openMigrationQueue({ redisUrl: lab.redis?.url as string, prefix: 'idle' });
    try {
      const jobId = await enqueue(idleQueue, inventory, 'web03', 'xen-a', 'xen-c');
      const { stdout } = await run(process.execPath, [ferryBin, 'cancel', jobId], {
        env: {
          ...process.env,
          FERRY_REDIS_URL: lab.redis?.url,
          FERRY_PREFIX: 'idle',
          FERRY_INVENTORY: lab.inventoryPath,
        },
      });
      expect(stdout.trim()).toBe('cancelled');
      const report = await getMigrationStatus(idleQueue, jobId);
      expect(report.state).toBe('cancelled');
      expect(await idleQueue.queue.count()).toBe(0);
      expect(placement(lab, 'web03')['xen-a']).toBe('-b----');
    } finally {
      await idleQueue.close();
    }
  });

  it('cancels a running migration from another process', async () => {
    const jobId = await enqueue(queue, inventory, 'long01', 'xen-a', 'xen-c');
    await waitForTransfer(queue, jobId, 8192);
    const { stdout } = await run(process.execPath, [ferryBin, 'cancel', jobId], {
      env: {
        ...process.env,
        FERRY_REDIS_URL: lab.redis?.url,
        FERRY_PREFIX: prefix,
        FERRY_INVENTORY: lab.inventoryPath,
      },
    });
    expect(stdout).toMatch(/^cancelling/);

    const result = await resultOf(queue, jobId);
    expect(result.status).toBe('cancelled');
    expect(placement(lab, 'long01')).toEqual({
      'xen-a': '-b----',
      'xen-b': undefined,
      'xen-c': undefined,
      'xen-d': undefined,
    });
    const sshd = lab.host('xen-a').sshd.pid as number;
    expect(listeningPortsOf([sshd, ...descendantsOf(sshd)])).toEqual([lab.host('xen-a').sshPort]);
  });

  it('survives Redis restarting during a migration', async () => {
    const jobId = await enqueue(queue, inventory, 'web05', 'xen-a', 'xen-c');
    await waitForTransfer(queue, jobId, 8192);
    await lab.redis?.restart();

    const result = await resultOf(queue, jobId);
    expect(result.status).toBe('completed');
    expect(placement(lab, 'web05')['xen-c']).toBe('-b----');
    // The worker is still serving jobs afterwards.
    const next = await resultOf(queue, await enqueue(queue, inventory, 'web06', 'xen-a', 'xen-c'));
    expect(next.status).toBe('completed');
  });
});

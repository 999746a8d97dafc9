import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadInventory, type Inventory } from '../../../src/config/inventory.js';
import { xmDriver } from '../../../src/drivers/xm/driver.js';
import { isFerryError } from '../../../src/errors.js';
import { enqueueMigration, waitForResult } from '../../../src/jobs/producer.js';
import { openMigrationQueue, type MigrationQueue } from '../../../src/jobs/queue.js';
import { Lab } from '../../../src/lab/lab.js';
import { descendantsOf, listeningPortsOf } from '../../../src/lab/processes.js';
import { createLogger } from '../../../src/log.js';
import { startMigrationWorker, type MigrationWorkerHandle } from '../../../src/migration/worker.js';
import { SshConnection } from '../../../src/ssh/connection.js';
import type { MigrationResult } from '../../../src/types.js';

const disk = (vm: string) => `file:/srv/xen/${vm}.img`;
const quietLogger = createLogger({ level: 'silent' });

describe('migration end to end', () => {
  let lab: Lab;
  let inventory: Inventory;
  let queue: MigrationQueue;
  let worker: MigrationWorkerHandle;
  const prefix = `e2e-${process.pid}`;

  beforeAll(async () => {
    lab = await Lab.start({
      bytesPerMiB: 4096,
      hosts: [
        {
          name: 'xen-a',
          totalMemoryMiB: 16_384,
          bridges: ['xenbr0', 'xenbr1'],
          domains: [
            { name: 'web01', memoryMiB: 512, vcpus: 1, disks: [disk('web01')], vifs: [{ bridge: 'xenbr0' }] },
            { name: 'web02', memoryMiB: 256, vcpus: 1, disks: [disk('web02')], vifs: [{ bridge: 'xenbr0' }] },
            { name: 'web03', memoryMiB: 256, vcpus: 1, disks: [disk('web03')], vifs: [{ bridge: 'xenbr0' }] },
            { name: 'db01', memoryMiB: 256, vcpus: 1, disks: [disk('db01')], vifs: [{ bridge: 'xenbr1' }] },
            {
              name: 'big01',
              memoryMiB: 6144,
              vcpus: 4,
              disks: [disk('big01')],
              vifs: [{ bridge: 'xenbr0' }],
            },
          ],
          // 2 MiB of web01 at 2 MB/s: about a second, long enough to see the tunnel mid-transfer.
          transferRateBytesPerSec: 2_000_000,
        },
        { name: 'xen-b', totalMemoryMiB: 4096 },
        { name: 'xen-c' },
      ],
    });
    await lab.host('xen-c').sim.setRelocationServer(false);
    inventory = loadInventory(lab.inventoryPath);
    queue = await openMigrationQueue({ redisUrl: lab.redis?.url as string, prefix });
    worker = await startMigrationWorker({
      redisUrl: lab.redis?.url as string,
      prefix,
      inventory,
      bastion: 'test-bastion',
      retryBackoff: { baseDelayMs: 50, maxDelayMs: 200 },
      logger: quietLogger,
    });
  });

  afterAll(async () => {
    await worker?.close();
    await queue?.close();
    await lab?.stop();
  });

  async function migrate(
    vm: string,
    source: string,
    target: string,
    extra: object = {},
  ): Promise<MigrationResult> {
    const { jobId } = await enqueueMigration(queue, inventory, {
      vm,
      source,
      target,
      requester: 'e2e-test',
      reason: 'integration test',
      ...extra,
    });
    const report = await waitForResult(queue, jobId, { timeoutMs: 60_000, pollMs: 50 });
    expect(report.result, `job ${jobId} ended in state ${report.state}`).toBeDefined();
    return report.result as MigrationResult;
  }

  function placement(vm: string): Record<string, string | undefined> {
    return Object.fromEntries(
      lab.hosts.map((host) => [host.name, host.sim.domains().find((domain) => domain.name === vm)?.state]),
    );
  }

  /** Ports that the source host's sshd (listener and sessions) listens on. */
  function sshdListeners(host: string): number[] {
    const pid = lab.host(host).sshd.pid as number;
    return listeningPortsOf([pid, ...descendantsOf(pid)]);
  }

  it('completes through a relay tunnel and leaves nothing on the source', async () => {
    const sshPort = lab.host('xen-a').sshPort;
    let tunnelSeen: number[] = [];
    const watcher = setInterval(() => {
      const ports = sshdListeners('xen-a').filter((port) => port !== sshPort);
      if (ports.length > 0) tunnelSeen = ports;
    }, 20);

    const result = await migrate('web01', 'xen-a', 'xen-b');
    clearInterval(watcher);

    expect(result.status).toBe('completed');
    expect(result.tunnel).toBe('relay');
    expect(result.attempts).toBe(1);
    expect(result.bastion).toBe('test-bastion');
    const transfer = lab.transfers
      .all()
      .find((record) => record.vm === 'web01' && record.outcome === 'completed');
    expect(result.bytes).toBeGreaterThanOrEqual(transfer?.bytes ?? Infinity);
    expect(Object.keys(result.phaseMs)).toEqual(['connect', 'preflight', 'tunnel', 'migrate', 'verify']);
    expect(placement('web01')).toEqual({ 'xen-a': undefined, 'xen-b': '-b----', 'xen-c': undefined });
    expect(tunnelSeen.length).toBe(1);
    expect(sshdListeners('xen-a')).toEqual([sshPort]);
    expect(lab.sessionProcesses()).toEqual([]);
  });

  it('completes through a direct tunnel and ends the ssh process', async () => {
    const result = await migrate('web02', 'xen-a', 'xen-b', { options: { tunnel: 'direct' } });

    expect(result.status).toBe('completed');
    expect(result.tunnel).toBe('direct');
    // Both jobs so far used the same two pooled connections: one handshake per host.
    expect(worker.pool.handshakes).toBe(2);
    expect(placement('web02')).toEqual({ 'xen-a': undefined, 'xen-b': '-b----', 'xen-c': undefined });
    expect(sshdListeners('xen-a')).toEqual([lab.host('xen-a').sshPort]);
    expect(lab.sessionProcesses()).toEqual([]);
  });

  it('fails an unknown VM at once', async () => {
    const result = await migrate('ghost01', 'xen-a', 'xen-b');
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('VM_NOT_FOUND');
    expect(result.attempts).toBe(1);
  });

  it('fails when the target is short of memory', async () => {
    const result = await migrate('big01', 'xen-a', 'xen-b');
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('TARGET_MEMORY_SHORT');
    expect(result.error?.message).toContain('6144 MiB');
    expect(result.attempts).toBe(1);
    expect(placement('big01')['xen-a']).toBe('-b----');
  });

  it('fails when the target lacks a bridge', async () => {
    const result = await migrate('db01', 'xen-a', 'xen-b');
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('TARGET_BRIDGE_MISSING');
    expect(result.error?.message).toContain('xenbr1');
    expect(placement('db01')['xen-a']).toBe('-b----');
  });

  it('retries, then fails, when the relocation server is off', async () => {
    const result = await migrate('web03', 'xen-a', 'xen-c', { options: { attempts: 2 } });
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('RELOCATION_REFUSED');
    expect(result.attempts).toBe(2);
    expect(placement('web03')).toEqual({ 'xen-a': '-b----', 'xen-b': undefined, 'xen-c': undefined });
    expect(sshdListeners('xen-a')).toEqual([lab.host('xen-a').sshPort]);
  });

  it('rejects VM names with shell metacharacters and queues nothing', async () => {
    const pending = () => queue.queue.getJobCountByTypes('waiting', 'delayed', 'prioritized');
    const before = await pending();
    for (const vm of ['web01;touch /tmp/x', '$(id)', '`id`', 'web01 && true', '-rf', "a'b", 'web01\nid']) {
      await expect(
        enqueueMigration(queue, inventory, {
          vm,
          source: 'xen-a',
          target: 'xen-b',
          requester: 't',
          reason: 'r',
        }),
      ).rejects.toSatisfy((error: unknown) => isFerryError(error, 'INVALID_REQUEST'));
    }
    expect(await pending()).toBe(before);
  });

  it('passes a hostile VM name to xm as one literal argument', async () => {
    // Defence in depth below validation: the SSH layer quotes every argument.
    const marker = join(lab.dir, 'shell-ran');
    const hostile = `x$(touch ${marker})\`touch ${marker}\`;touch ${marker}`;
    const connection = await SshConnection.connect(inventory.host('xen-a'));
    try {
      const shell = { host: inventory.host('xen-a'), run: (argv: string[]) => connection.exec(argv) };
      await expect(xmDriver.describe(shell, hostile)).rejects.toThrow(`VM '${hostile}' does not exist`);
    } finally {
      await connection.close();
    }
    expect(existsSync(marker)).toBe(false);
  });
});

describe('migration with a wrong host key pin', () => {
  it('fails at once and runs nothing on the host', async () => {
    const lab = await Lab.start();
    try {
      const wrong = readFileSync(lab.inventoryPath, 'utf8').replace(
        lab.host('xen-a').hostKey.fingerprint,
        lab.host('xen-b').hostKey.fingerprint,
      );
      const path = join(lab.dir, 'wrong-pin.yaml');
      writeFileSync(path, wrong);
      const inventory = loadInventory(path);
      const url = lab.redis?.url as string;
      const queue = await openMigrationQueue({ redisUrl: url, prefix: 'pin' });
      const worker = await startMigrationWorker({
        redisUrl: url,
        prefix: 'pin',
        inventory,
        logger: quietLogger,
      });
      try {
        const { jobId } = await enqueueMigration(queue, inventory, {
          vm: 'web01',
          source: 'xen-a',
          target: 'xen-b',
          requester: 'pin-test',
          ticket: 'OPS-1',
        });
        const report = await waitForResult(queue, jobId, { timeoutMs: 30_000, pollMs: 50 });
        expect(report.result?.status).toBe('failed');
        expect(report.result?.error?.code).toBe('HOST_KEY_MISMATCH');
        expect(report.result?.attempts).toBe(1);
        expect(lab.host('xen-a').sshd.log).not.toMatch(/Accepted publickey/);
        expect(
          lab
            .host('xen-a')
            .sim.domains()
            .map((domain) => domain.name),
        ).toContain('web01');
      } finally {
        await worker.close();
        await queue.close();
      }
    } finally {
      await lab.stop();
    }
  });
});

/**
 * Shared set-up of the QEMU integration tests: a lab whose hosts run real QEMU VMs, a queue and
 * an in-process worker, and helpers to watch the guests' serial counters.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { expect } from 'vitest';

import { loadInventory, type Inventory } from '../../../src/config/inventory.js';
import { enqueueMigration, waitForResult, type MigrationStatusReport } from '../../../src/jobs/producer.js';
import { openMigrationQueue, type MigrationQueue } from '../../../src/jobs/queue.js';
import { Lab, type LabHostOptions } from '../../../src/lab/lab.js';
import type { LabQemuHost } from '../../../src/lab/qemu/host.js';
import { createLogger } from '../../../src/log.js';
import { startMigrationWorker, type MigrationWorkerHandle } from '../../../src/migration/worker.js';
import type { MigrationProgress, MigrationResult } from '../../../src/types.js';

export interface QemuLab {
  lab: Lab;
  inventory: Inventory;
  queue: MigrationQueue;
  worker: MigrationWorkerHandle;
  close(): Promise<void>;
}

export async function startQemuLab(hosts: LabHostOptions[], prefix: string): Promise<QemuLab> {
  const lab = await Lab.start({ hosts });
  try {
    const inventory = loadInventory(lab.inventoryPath);
    const redisUrl = lab.redis?.url as string;
    const queue = await openMigrationQueue({ redisUrl, prefix });
    const worker = await startMigrationWorker({
      redisUrl,
      prefix,
      inventory,
      bastion: 'qemu-test-bastion',
      retryBackoff: { baseDelayMs: 50, maxDelayMs: 200 },
      logger: createLogger({ level: (process.env.FERRY_TEST_LOG ?? 'silent') as 'silent' }),
    });
    return {
      lab,
      inventory,
      queue,
      worker,
      close: async () => {
        await worker.close();
        await queue.close();
        await lab.stop();
      },
    };
  } catch (error) {
    await lab.stop().catch(() => undefined);
    throw error;
  }
}

export function qemuOf(lab: Lab, host: string): LabQemuHost {
  const qemu = lab.host(host).qemu;
  if (qemu === undefined) throw new Error(`Lab host ${host} runs no QEMU.`);
  return qemu;
}

/** Enqueues a migration and waits for its result, handing every progress report to `onProgress`. */
export async function migrate(
  setup: QemuLab,
  request: { vm: string; source: string; target: string; options?: object },
  onProgress: (progress: MigrationProgress, report: MigrationStatusReport) => void = () => undefined,
): Promise<MigrationResult> {
  const { jobId } = await enqueueMigration(setup.queue, setup.inventory, {
    requester: 'qemu-test',
    reason: 'QEMU integration test',
    ...request,
  });
  const report = await waitForResult(setup.queue, jobId, {
    timeoutMs: 90_000,
    pollMs: 50,
    onProgress: (status) => {
      if (status.progress !== undefined) onProgress(status.progress, status);
    },
  });
  expect(report.result, `job ${jobId} ended in state ${report.state}: ${report.failedReason}`).toBeDefined();
  return report.result as MigrationResult;
}

/** Waits until `check` returns true, polling every 50 ms, or fails after `timeoutMs`. */
export async function waitUntil(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}.`);
    await sleep(50);
  }
}

/** Waits until the VM's guest on `host` has printed `count` more ticks than it had. */
export async function waitForMoreTicks(qemu: LabQemuHost, vm: string, count: number): Promise<void> {
  const before = qemu.ticks(vm).at(-1) ?? 0;
  await waitUntil(`${count} more ticks of ${vm}`, () => (qemu.ticks(vm).at(-1) ?? 0) >= before + count);
}

/**
 * Checks that the guest counted on without a restart: the ticks on the source run 1, 2, 3, ...
 * and the target's first tick follows the source's last. A line cut in two by the switch-over
 * (its start on the source, its end on the target) hides one number.
 */
export function expectCounterCarriedOn(sourceTicks: number[], targetTicks: number[]): void {
  expect(sourceTicks.length).toBeGreaterThan(0);
  expect(sourceTicks).toEqual(sourceTicks.map((_tick, index) => index + 1));
  const last = sourceTicks.at(-1) as number;
  expect(targetTicks[0]).toBeGreaterThanOrEqual(last + 1);
  expect(targetTicks[0]).toBeLessThanOrEqual(last + 2);
  expect(targetTicks).toEqual(targetTicks.map((_tick, index) => (targetTicks[0] as number) + index));
}

/** Pids of the direct-mode `ssh -L` clients that lab sessions run. */
export function directTunnelClients(lab: Lab): number[] {
  return lab.sessionProcesses().filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return argv[0] === '/usr/bin/ssh' && argv.includes('-L');
    } catch {
      return false;
    }
  });
}

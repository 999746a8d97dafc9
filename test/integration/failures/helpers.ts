import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

import { expect } from 'vitest';

import type { Inventory } from '../../../src/config/inventory.js';
import { enqueueMigration, getMigrationStatus, waitForResult } from '../../../src/jobs/producer.js';
import type { MigrationQueue } from '../../../src/jobs/queue.js';
import type { Lab } from '../../../src/lab/lab.js';
import type { DomainSpec } from '../../../src/lab/xen/simulator.js';
import type { MigrationResult } from '../../../src/types.js';

export const ferryBin = join(import.meta.dirname, '..', '..', '..', 'bin', 'ferry.mjs');

export function domain(name: string, memoryMiB = 512): DomainSpec {
  return { name, memoryMiB, vcpus: 1, disks: [`file:/srv/xen/${name}.img`], vifs: [{ bridge: 'xenbr0' }] };
}

/** Enqueues a migration and returns its job id. */
export async function enqueue(
  queue: MigrationQueue,
  inventory: Inventory,
  vm: string,
  source: string,
  target: string,
  options: object = {},
): Promise<string> {
  const { jobId } = await enqueueMigration(queue, inventory, {
    vm,
    source,
    target,
    requester: 'failure-tests',
    reason: 'failure test',
    options,
  });
  return jobId;
}

/** Waits for the job's final result; fails the test if there is none within `timeoutMs`. */
export async function resultOf(
  queue: MigrationQueue,
  jobId: string,
  timeoutMs = 60_000,
): Promise<MigrationResult> {
  const report = await waitForResult(queue, jobId, { timeoutMs, pollMs: 50 });
  expect(report.result, `job ${jobId} ended in state ${report.state}`).toBeDefined();
  return report.result as MigrationResult;
}

/** Waits until the job's progress shows bytes moving in the migrate phase. */
export async function waitForTransfer(queue: MigrationQueue, jobId: string, minBytes = 1): Promise<void> {
  const deadline = Date.now() + 30_000;
  let last = '';
  while (Date.now() < deadline) {
    const report = await getMigrationStatus(queue, jobId);
    if (report.progress?.phase === 'migrate' && (report.progress.bytes ?? 0) >= minBytes) return;
    last = JSON.stringify({ state: report.state, progress: report.progress, error: report.result?.error });
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(
    `job ${jobId} never reached the migrate phase with ${minBytes} bytes moved; last status ${last}`,
  );
}

/** Returns the VM's xm state flags on each lab host, or undefined where it is absent. */
export function placement(lab: Lab, vm: string): Record<string, string | undefined> {
  return Object.fromEntries(
    lab.hosts.map((host) => [
      host.name,
      host.sim.domains().find((candidate) => candidate.name === vm)?.state,
    ]),
  );
}

/** Starts `ferry worker` as its own process against the lab. */
export function spawnWorker(lab: Lab, prefix: string, env: Record<string, string> = {}): ChildProcess {
  const child = spawn(
    process.execPath,
    [ferryBin, 'worker', '--bastion', `bastion-${Date.now() % 100_000}`],
    {
      env: {
        ...process.env,
        FERRY_REDIS_URL: lab.redis?.url,
        FERRY_INVENTORY: lab.inventoryPath,
        FERRY_PREFIX: prefix,
        FERRY_LOG_LEVEL: 'warn',
        FERRY_LOCK_DURATION_MS: '3000',
        FERRY_STALLED_INTERVAL_MS: '1000',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout?.resume();
  child.stderr?.resume();
  return child;
}

/** Ends a worker process with a signal and waits for it to exit. */
export async function stopWorker(child: ChildProcess, signal: NodeJS.Signals): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill(signal);
  const [code] = (await exited) as [number | null];
  return code;
}

/** `ferry worker` processes for the multi-process lock tests, and checks on the lab's transfers. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

import type { Lab } from '../../../src/lab/lab.js';
import type { TransferRecord } from '../../../src/lab/transfers.js';
import type { DomainSpec } from '../../../src/lab/xen/simulator.js';

const ferryBin = join(import.meta.dirname, '..', '..', '..', 'bin', 'ferry.mjs');

export function domain(name: string, memoryMiB: number): DomainSpec {
  return { name, memoryMiB, vcpus: 1, disks: [`file:/srv/xen/${name}.img`], vifs: [{ bridge: 'xenbr0' }] };
}

/** A worker process; its output is kept so that a failing test can show it. */
export interface WorkerProcess {
  child: ChildProcess;
  output(): string;
}

/** Starts `ferry worker` as its own process against the lab's Redis and inventory. */
export function spawnWorker(
  lab: Lab,
  prefix: string,
  bastion: string,
  env: Record<string, string> = {},
): WorkerProcess {
  const child = spawn(process.execPath, [ferryBin, 'worker', '--bastion', bastion], {
    env: {
      ...process.env,
      FERRY_REDIS_URL: lab.redis?.url,
      FERRY_INVENTORY: lab.inventoryPath,
      FERRY_PREFIX: prefix,
      FERRY_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, output: () => output };
}

/** Ends a worker process with a signal and waits until it has exited. */
export async function stopWorker(worker: WorkerProcess, signal: NodeJS.Signals): Promise<void> {
  const { child } = worker;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

/**
 * Returns, per host, the highest number of transfers it took part in at the same time (as
 * source or target), from the lab's transfer record.
 */
export function highestOverlap(transfers: TransferRecord[]): Map<string, number> {
  const edges: Array<{ host: string; at: number; change: number }> = [];
  for (const transfer of transfers) {
    for (const host of [transfer.source, transfer.target]) {
      edges.push({ host, at: transfer.start, change: 1 }, { host, at: transfer.end, change: -1 });
    }
  }
  // At equal times an end comes first: back-to-back transfers do not overlap.
  edges.sort((a, b) => a.at - b.at || a.change - b.change);
  const current = new Map<string, number>();
  const highest = new Map<string, number>();
  for (const edge of edges) {
    const count = (current.get(edge.host) ?? 0) + edge.change;
    current.set(edge.host, count);
    highest.set(edge.host, Math.max(count, highest.get(edge.host) ?? 0));
  }
  return highest;
}

import { parseInventory, type Inventory } from '../../../src/config/inventory.js';
import type { InFlightLister } from '../../../src/locks/in-flight.js';
import { LockManager, type LockableJob } from '../../../src/locks/manager.js';
import type { LockOptions } from '../../../src/locks/options.js';
import { createLogger } from '../../../src/log.js';

export const quietLogger = createLogger({ level: 'silent' });

/** Builds an inventory of hosts that are never connected to, because the scheduler only needs names and limits. */
export function fakeInventory(names: string[], limits: Record<string, object> = {}): Inventory {
  const hosts: Record<string, object> = {};
  for (const name of names) {
    hosts[name] = {
      address: '192.0.2.1',
      user: 'ferry',
      identityFile: '/nonexistent/id_ed25519',
      hostKey: `SHA256:${'A'.repeat(43)}`,
      ...(limits[name] === undefined ? {} : { limits: limits[name] }),
    };
  }
  return parseInventory({ hosts });
}

export interface FakeJob extends LockableJob {
  id: string;
  handedBack: boolean;
}

export function fakeJob(id: string, vm: string, source: string, target: string): FakeJob {
  const job: FakeJob = {
    id,
    data: { vm, source, target },
    token: undefined,
    handedBack: false,
    moveToWait: async () => {
      job.handedBack = true;
    },
  };
  return job;
}

export const noMigrationsInFlight: InFlightLister = async () => [];

export async function startManager(
  redisUrl: string,
  prefix: string,
  inventory: Inventory,
  options: LockOptions & { listInFlight?: InFlightLister; bastion?: string } = {},
): Promise<LockManager> {
  return LockManager.start({
    redisUrl,
    prefix,
    inventory,
    bastion: options.bastion ?? 'test-bastion',
    logger: quietLogger,
    listInFlight: options.listInFlight ?? noMigrationsInFlight,
    ...options,
  });
}

/** Counts jobs per host while they hold their locks, and records the highest count seen. */
export class HostUsage {
  readonly #current = new Map<string, number>();
  readonly highest = new Map<string, number>();

  enter(...hosts: string[]): void {
    for (const host of hosts) {
      const count = (this.#current.get(host) ?? 0) + 1;
      this.#current.set(host, count);
      this.highest.set(host, Math.max(count, this.highest.get(host) ?? 0));
    }
  }

  leave(...hosts: string[]): void {
    for (const host of hosts) this.#current.set(host, (this.#current.get(host) ?? 1) - 1);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Returns the value at quantile `q` (0 to 1) of `values`. */
export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

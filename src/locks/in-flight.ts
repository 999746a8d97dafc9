/**
 * The in-flight check: before a migration starts, its source and target must show no
 * migration that no ferry lock accounts for. A migration can outlive its worker, because xend
 * carries on after the xm client is gone. An operator may also migrate by hand. The locks
 * alone show neither.
 */
import type { HostConfig, Inventory } from '../config/inventory.js';
import { driverFor } from '../drivers/index.js';
import { shellFor } from '../migration/run.js';
import type { SshPool } from '../ssh/pool.js';
import { vmOfInFlight, type LockSubject } from './resources.js';
import type { LockStore } from './store.js';
import { abortable } from './wait.js';

/** Lists the migrations in flight on a host, as the host's driver reports them. */
export type InFlightLister = (host: HostConfig, signal: AbortSignal) => Promise<string[]>;

/** Migrations in flight on one host that no lock accounts for. */
export interface UnaccountedMigrations {
  host: string;
  entries: string[];
}

/** Returns the lister that runs each host's driver through a pooled SSH connection. */
export function sshInFlightLister(pool: SshPool): InFlightLister {
  return async (host, signal) => {
    const lease = await pool.acquire(host, { signal });
    try {
      return await abortable(driverFor(host).migrationsInFlight(shellFor(lease.connection, host)), signal);
    } finally {
      lease.release();
    }
  };
}

/**
 * Returns, per host of the migration, the migrations in flight whose VM no job holds a lock
 * on. The migration's own VM counts as accounted for: its job holds that lock, and the
 * attempt's reconciliation deals with a migration of it that an earlier attempt started.
 */
export async function findUnaccountedMigrations(
  subject: LockSubject,
  inventory: Inventory,
  list: InFlightLister,
  store: LockStore,
  signal: AbortSignal,
): Promise<UnaccountedMigrations[]> {
  const hosts = [inventory.host(subject.source), inventory.host(subject.target)];
  const listed = await Promise.all(hosts.map((host) => list(host, signal)));
  const vms = [...new Set(listed.flat().map(vmOfInFlight))];
  const locked = new Set(await store.lockedVms(vms));

  const found: UnaccountedMigrations[] = [];
  for (const [index, host] of hosts.entries()) {
    const entries = (listed[index] ?? []).filter((entry) => !locked.has(vmOfInFlight(entry)));
    if (entries.length > 0) found.push({ host: host.name, entries });
  }
  return found;
}

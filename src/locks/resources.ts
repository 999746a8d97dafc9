/**
 * Lock resources of a migration, held for its whole run: the VM's lock, a slot on the source
 * and on the target, and a slot of the global cap when one is set. Each resource has a limit,
 * the number of jobs that may hold it at once.
 *
 * Resource names: `vm:<vm>`, `host:<host>` (both directions together), `host-out:<host>` and
 * `host-in:<host>` (directions counted apart), `global`. Host and VM names cannot contain `:`.
 */
import type { HostConfig, Inventory } from '../config/inventory.js';

export interface LockResource {
  name: string;
  limit: number;
}

/** The parts of a migration request that decide its resources. */
export interface LockSubject {
  vm: string;
  source: string;
  target: string;
}

export type ResourceKind = 'vm' | 'host' | 'host-out' | 'host-in' | 'global' | 'other';

/** Returns the host slots a migration takes on one host, in the given direction. */
export function hostResources(host: HostConfig, direction: 'outgoing' | 'incoming'): LockResource[] {
  const limits = host.limits ?? {};
  const apart = limits.outgoing !== undefined || limits.incoming !== undefined;
  if (!apart) return [{ name: `host:${host.name}`, limit: limits.migrations ?? 1 }];

  const resources: LockResource[] =
    direction === 'outgoing'
      ? [{ name: `host-out:${host.name}`, limit: limits.outgoing ?? 1 }]
      : [{ name: `host-in:${host.name}`, limit: limits.incoming ?? 1 }];
  if (limits.migrations !== undefined) {
    resources.push({ name: `host:${host.name}`, limit: limits.migrations });
  }
  return resources;
}

/**
 * Returns every resource a migration holds for its whole run, sorted by name. Throws
 * UNKNOWN_HOST for a host that is not in the inventory.
 */
export function migrationResources(
  subject: LockSubject,
  inventory: Inventory,
  maxMigrations: number | undefined,
): LockResource[] {
  const resources = [
    { name: `vm:${subject.vm}`, limit: 1 },
    ...hostResources(inventory.host(subject.source), 'outgoing'),
    ...hostResources(inventory.host(subject.target), 'incoming'),
    ...(maxMigrations === undefined ? [] : [{ name: 'global', limit: maxMigrations }]),
  ];
  // A source that is also the target (rejected by request validation) would count twice.
  const byName = new Map<string, LockResource>();
  for (const resource of resources) {
    const known = byName.get(resource.name);
    if (known === undefined || resource.limit < known.limit) byName.set(resource.name, resource);
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Splits a resource name into its kind and the host or VM it names. */
export function parseResourceName(name: string): { kind: ResourceKind; subject: string } {
  if (name === 'global') return { kind: 'global', subject: '' };
  const colon = name.indexOf(':');
  const kind = name.slice(0, colon);
  const subject = name.slice(colon + 1);
  if (kind === 'vm' || kind === 'host' || kind === 'host-out' || kind === 'host-in') return { kind, subject };
  return { kind: 'other', subject: name };
}

/** Returns the host a resource name refers to, or undefined for VM locks and the global cap. */
export function hostOfResource(name: string): string | undefined {
  const { kind, subject } = parseResourceName(name);
  return kind === 'host' || kind === 'host-out' || kind === 'host-in' ? subject : undefined;
}

/**
 * Returns the VM name an entry of `migrationsInFlight` refers to. Drivers start each entry with
 * the domain name as the hypervisor lists it, for example `migrating-web01 (outgoing)` or
 * `web01 (paused, possibly incoming)` from xm. xend's `migrating-` prefix marks the source side.
 */
export function vmOfInFlight(entry: string): string {
  const name = entry.trim().split(/\s+/, 1)[0] ?? '';
  return name.startsWith('migrating-') ? name.slice('migrating-'.length) : name;
}

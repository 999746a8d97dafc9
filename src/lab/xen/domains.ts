import { randomBytes, randomUUID } from 'node:crypto';
import type { DomainView } from './types.js';

/** A domain in a simulated host's memory. */
export interface Domain {
  id: number;
  name: string;
  uuid: string;
  memoryMiB: number;
  vcpus: number;
  disks: string[];
  vifs: Array<{ bridge: string; mac: string }>;
  state: 'running' | 'paused';
  /** CPU seconds accumulated before `runningSince`. */
  cpuSeconds: number;
  /** Epoch milliseconds when the domain last started running; undefined while paused. */
  runningSince: number | undefined;
  /** True while the domain is being received by a migration and must not be touched. */
  incoming: boolean;
}

export type NewDomain = Pick<Domain, 'name' | 'memoryMiB' | 'vcpus' | 'disks' | 'state' | 'incoming'> & {
  uuid?: string;
  vifs: Array<{ bridge: string; mac?: string }>;
};

/** Prefix that xend gives a domain's name while it is being sent to another host. */
export const MIGRATING_PREFIX = 'migrating-';

/** Returns a random MAC address in Xen's range 00:16:3e:xx:xx:xx. */
export function randomXenMac(): string {
  const tail = [...randomBytes(3)].map((byte) => byte.toString(16).padStart(2, '0'));
  return ['00', '16', '3e', ...tail].join(':');
}

/**
 * The domains of one host. Ids grow from 1 and the lab does not reuse them, so a domain that
 * arrives by migration gets an id that this host never gave out before. `onChange` runs after
 * every change so that the host can persist its state.
 */
export class DomainTable {
  readonly #domains = new Map<number, Domain>();
  #nextId = 1;

  constructor(private readonly onChange: () => void) {}

  get nextId(): number {
    return this.#nextId;
  }

  list(): Domain[] {
    return [...this.#domains.values()].sort((a, b) => a.id - b.id);
  }

  /** Finds a domain by exact name, or by numeric id as xm does. */
  find(nameOrId: string): Domain | undefined {
    const byName = this.list().find((domain) => domain.name === nameOrId);
    if (byName !== undefined || !/^\d+$/.test(nameOrId)) return byName;
    return this.#domains.get(Number(nameOrId));
  }

  usedMemoryMiB(): number {
    return this.list().reduce((sum, domain) => sum + domain.memoryMiB, 0);
  }

  create(spec: NewDomain, now = Date.now()): Domain {
    const domain: Domain = {
      id: this.#nextId,
      name: spec.name,
      uuid: spec.uuid ?? randomUUID(),
      memoryMiB: spec.memoryMiB,
      vcpus: spec.vcpus,
      disks: [...spec.disks],
      vifs: spec.vifs.map((vif) => ({ bridge: vif.bridge, mac: vif.mac ?? randomXenMac() })),
      state: spec.state,
      cpuSeconds: 0,
      runningSince: spec.state === 'running' ? now : undefined,
      incoming: spec.incoming,
    };
    this.#nextId += 1;
    this.#domains.set(domain.id, domain);
    this.onChange();
    return domain;
  }

  /** Removes the domain; returns false when it was already gone. */
  remove(domain: Domain): boolean {
    if (this.#domains.get(domain.id) !== domain) return false;
    this.#domains.delete(domain.id);
    this.onChange();
    return true;
  }

  has(domain: Domain): boolean {
    return this.#domains.get(domain.id) === domain;
  }

  rename(domain: Domain, name: string): void {
    domain.name = name;
    this.onChange();
  }

  setState(domain: Domain, state: Domain['state'], now = Date.now()): void {
    if (domain.state === state) return;
    if (state === 'paused') {
      domain.cpuSeconds = cpuTimeSeconds(domain, now);
      domain.runningSince = undefined;
    } else {
      domain.runningSince = now;
    }
    domain.state = state;
    this.onChange();
  }

  /** Marks a received domain as complete and restarts its CPU time from zero, as a fresh start does. */
  finishIncoming(domain: Domain, state: Domain['state'], now = Date.now()): void {
    domain.incoming = false;
    domain.cpuSeconds = 0;
    domain.runningSince = state === 'running' ? now : undefined;
    domain.state = state;
    this.onChange();
  }
}

export function cpuTimeSeconds(domain: Domain, now = Date.now()): number {
  const running = domain.runningSince === undefined ? 0 : (now - domain.runningSince) / 1000;
  return domain.cpuSeconds + running;
}

/** Xen's six state flags; an idle running guest is blocked (b) most of the time. */
export function stateFlags(domain: Domain): string {
  return domain.state === 'paused' ? '--p---' : '-b----';
}

export function viewDomain(domain: Domain, now = Date.now()): DomainView {
  return {
    name: domain.name,
    id: domain.id,
    uuid: domain.uuid,
    memoryMiB: domain.memoryMiB,
    vcpus: domain.vcpus,
    state: stateFlags(domain),
    cpuTimeSeconds: cpuTimeSeconds(domain, now),
    disks: [...domain.disks],
    vifs: domain.vifs.map((vif) => ({ ...vif })),
  };
}

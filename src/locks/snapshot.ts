/**
 * The scheduler's state grouped by host, as `ferry locks` shows it: who holds each host's
 * slots and who waits for them, oldest first, so that an operator can see why a migration
 * has not started.
 */
import type { Redis } from 'ioredis';

import { hostOfResource, parseResourceName } from './resources.js';
import { LockStore, type RawLockSnapshot } from './store.js';

/** A job in the scheduler, as listed under one of its hosts. */
export interface LockJobView {
  jobId: string;
  vm: string;
  source: string;
  target: string;
  bastion: string;
  /** Redis time (ms) at which the job started waiting. */
  since: number;
  /** Redis time (ms) of the grant, for holders. */
  grantedAt?: number;
  /** Redis time (ms) at which the lease expires unless renewed, for holders. */
  expiresAt?: number;
  /** Resources the job is blocked on, for waiters. */
  blocked: string[];
  /** True for a waiter past its ageing threshold, which reserves its slots against newer jobs. */
  reserving: boolean;
}

/** One slot pool of a host: both directions (`host`), or one direction when counted apart. */
export interface SlotPoolView {
  resource: string;
  direction: 'both' | 'outgoing' | 'incoming';
  /** Limits the jobs in the scheduler were given for this pool (normally one value). */
  limits: number[];
  inUse: number;
}

export interface HostLockView {
  host: string;
  pools: SlotPoolView[];
  /** Jobs holding a slot on this host, oldest grant first. */
  holders: LockJobView[];
  /** Jobs waiting for a slot on this host, longest waiting first. */
  waiting: LockJobView[];
}

export interface LockSnapshot {
  /** Redis time (ms) of the snapshot. */
  now: number;
  hosts: HostLockView[];
  /** The global cap, when the jobs carry one. */
  global?: { limits: number[]; holders: string[] };
}

function numberField(record: Record<string, string>, field: string): number | undefined {
  const value = Number(record[field]);
  return record[field] === undefined || record[field] === '' || !Number.isFinite(value) ? undefined : value;
}

function resourcesOf(record: Record<string, string>): Array<[string, number]> {
  try {
    const parsed: unknown = JSON.parse(record.resources ?? '[]');
    return Array.isArray(parsed) ? (parsed as Array<[string, number]>) : [];
  } catch {
    return [];
  }
}

function blockedOf(record: Record<string, string>): string[] {
  try {
    const parsed: unknown = JSON.parse(record.blocked ?? '[]');
    return Array.isArray(parsed) ? parsed.map(String) : [];
  } catch {
    return [];
  }
}

function jobView(jobId: string, record: Record<string, string>, since: number | undefined): LockJobView {
  const grantedAt = numberField(record, 'grantedAt');
  const expiresAt = numberField(record, 'expiresAt');
  return {
    jobId,
    vm: record.vm ?? '',
    source: record.source ?? '',
    target: record.target ?? '',
    bastion: record.bastion ?? '',
    since: since ?? numberField(record, 'since') ?? 0,
    ...(record.state === 'holding' && grantedAt !== undefined ? { grantedAt } : {}),
    ...(record.state === 'holding' && expiresAt !== undefined ? { expiresAt } : {}),
    blocked: record.state === 'holding' ? [] : blockedOf(record),
    reserving: record.state !== 'holding' && record.reserving === '1',
  };
}

const directions = { host: 'both', 'host-out': 'outgoing', 'host-in': 'incoming' } as const;

/** Groups a raw snapshot by host. Hosts and pools are sorted by name. */
export function groupByHost(raw: RawLockSnapshot): LockSnapshot {
  const hosts = new Map<string, HostLockView>();
  const pools = new Map<string, SlotPoolView>();
  const hostView = (host: string): HostLockView => {
    let view = hosts.get(host);
    if (view === undefined) {
      view = { host, pools: [], holders: [], waiting: [] };
      hosts.set(host, view);
    }
    return view;
  };
  const poolView = (resource: string, host: string): SlotPoolView => {
    let pool = pools.get(resource);
    if (pool === undefined) {
      const { kind } = parseResourceName(resource);
      const direction =
        kind === 'host-out' || kind === 'host-in' || kind === 'host' ? directions[kind] : 'both';
      pool = { resource, direction, limits: [], inUse: 0 };
      pools.set(resource, pool);
      hostView(host).pools.push(pool);
    }
    return pool;
  };
  let global: LockSnapshot['global'];

  const visit = (jobId: string, since: number | undefined, holding: boolean): void => {
    const record = raw.jobs[jobId] ?? {};
    const view = jobView(jobId, record, since);
    const seenHosts = new Set<string>();
    for (const [resource, limit] of resourcesOf(record)) {
      if (resource === 'global') {
        global ??= { limits: [], holders: [] };
        if (!global.limits.includes(limit)) global.limits.push(limit);
        if (holding) global.holders.push(jobId);
        continue;
      }
      const host = hostOfResource(resource);
      if (host === undefined) continue;
      const pool = poolView(resource, host);
      if (!pool.limits.includes(limit)) pool.limits.push(limit);
      if (holding) pool.inUse += 1;
      if (seenHosts.has(host)) continue;
      seenHosts.add(host);
      if (holding) hostView(host).holders.push(view);
      else hostView(host).waiting.push(view);
    }
  };

  const holderIds = new Set<string>();
  for (const entries of Object.values(raw.holders)) for (const entry of entries) holderIds.add(entry.job);
  for (const jobId of holderIds) visit(jobId, undefined, true);
  for (const entry of raw.waiting) visit(entry.job, entry.since, false);

  const sorted = [...hosts.values()].sort((a, b) => a.host.localeCompare(b.host));
  for (const view of sorted) {
    view.pools.sort((a, b) => a.resource.localeCompare(b.resource));
    view.holders.sort((a, b) => (a.grantedAt ?? 0) - (b.grantedAt ?? 0));
    view.waiting.sort((a, b) => a.since - b.since);
  }
  return { now: raw.now, hosts: sorted, ...(global === undefined ? {} : { global }) };
}

/** Reads the scheduler's state at one instant and groups it by host. */
export async function readLockSnapshot(redis: Redis, prefix: string): Promise<LockSnapshot> {
  return groupByHost(await new LockStore(redis, prefix).snapshot());
}

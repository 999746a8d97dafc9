/** Wording shared by the scheduler's errors, its log fields and `ferry locks`. */
import { FerryError } from '../errors.js';
import { hostOfResource, parseResourceName, type LockSubject } from './resources.js';

/** Formats a duration for people: "350 ms", "42 s", "3 min 5 s", "2 h 10 min". */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))} ms`;
  const seconds = Math.floor(ms / 1_000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Describes a resource for people: "host xen-a", "outgoing slots of xen-a", "VM web01". */
export function describeResource(name: string): string {
  const { kind, subject } = parseResourceName(name);
  switch (kind) {
    case 'vm':
      return `VM ${subject}`;
    case 'host':
      return `host ${subject}`;
    case 'host-out':
      return `outgoing slots of ${subject}`;
    case 'host-in':
      return `incoming slots of ${subject}`;
    case 'global':
      return 'the global cap';
    case 'other':
      return subject;
  }
}

/** Returns the hosts named by blocking resources, each once, in order. */
export function busyHosts(blocked: string[]): string[] {
  return [...new Set(blocked.map(hostOfResource).filter((host): host is string => host !== undefined))];
}

/** Builds the error of a job that waited its maximum time for its lock and slots. */
export function slotWaitTimeout(
  subject: LockSubject,
  blocked: string[],
  waitedMs: number,
  maxWaitMs: number,
): FerryError {
  const hosts = busyHosts(blocked);
  const reasons: string[] = [];
  if (hosts.length > 0) reasons.push(`${hosts.join(' and ')} stayed busy with other migrations`);
  if (blocked.includes(`vm:${subject.vm}`)) reasons.push(`another migration kept VM '${subject.vm}' locked`);
  if (blocked.includes('global')) reasons.push('the global cap of migrations stayed reached');
  const why = reasons.length > 0 ? reasons.join('; ') : 'its slots never became free together';
  return new FerryError(
    'SLOT_WAIT_TIMEOUT',
    `Waited ${formatDuration(waitedMs)} to migrate '${subject.vm}' from ${subject.source} to ${subject.target}, the maximum of ${formatDuration(maxWaitMs)}: ${why}. Retry later, or raise the worker's FERRY_SLOT_MAX_WAIT_MS.`,
    { context: { vm: subject.vm, host: hosts[0] ?? subject.source, blocked, waitedMs } },
  );
}

/** Builds the error of a job whose hosts kept showing migrations that no lock accounts for. */
export function inFlightWaitTimeout(
  subject: LockSubject,
  found: Array<{ host: string; entries: string[] }>,
  waitedMs: number,
): FerryError {
  const listing = found.map((item) => `${item.host}: ${item.entries.join(', ')}`).join('; ');
  return new FerryError(
    'SLOT_WAIT_TIMEOUT',
    `Waited ${formatDuration(waitedMs)} to migrate '${subject.vm}': migrations that no ferry job accounts for are still in flight (${listing}). Let them finish or clean them up on the host, then retry.`,
    { context: { vm: subject.vm, host: found[0]?.host ?? subject.source, inFlight: found, waitedMs } },
  );
}

/**
 * The identity behind a request (an API token, a Slack user or another chat user), reduced to what
 * the front ends need to decide. The identity's name is the requester of every job it queues.
 */
import type { Inventory } from '../../src/config/inventory.js';
import { ProducerError } from './errors.js';

export interface RateLimit {
  /** Requests allowed per window. */
  max: number;
  /** Length of the window, in milliseconds. */
  windowMs: number;
}

export interface ProducerIdentity {
  /** Requester recorded on what this identity queues, and whose results it reads. */
  name: string;
  /** Hosts this identity may name as source or target; undefined means every inventory host. */
  hosts?: ReadonlySet<string>;
  /** Whether this identity may open the queue dashboard, which shows every job. */
  dashboard: boolean;
  rateLimit: RateLimit;
}

/** Source and target of a job, from its request or its result. */
export interface JobHosts {
  source: string;
  target: string;
}

export function mayUseHost(identity: ProducerIdentity, host: string): boolean {
  return identity.hosts === undefined || identity.hosts.has(host);
}

/**
 * Returns true when the identity may see and cancel a job: both of its hosts must be ones the
 * identity may use. A job whose hosts are unknown is visible only to unrestricted identities.
 */
export function mayAccessJob(identity: ProducerIdentity, job: JobHosts | undefined): boolean {
  if (identity.hosts === undefined) return true;
  if (job === undefined) return false;
  return mayUseHost(identity, job.source) && mayUseHost(identity, job.target);
}

/** Throws FORBIDDEN naming each host of the request that the identity may not use. */
export function checkHostRights(identity: ProducerIdentity, request: JobHosts): void {
  const denied = (['source', 'target'] as const).filter((field) => !mayUseHost(identity, request[field]));
  if (denied.length === 0) return;
  const allowed = [...(identity.hosts ?? [])].sort().join(', ');
  const names = denied.map((field) => `${field} "${request[field]}"`).join(' and ');
  throw new ProducerError(
    'FORBIDDEN',
    `${identity.name} may not migrate with ${names}: it may use only ${allowed}. Ask an administrator to extend its hosts.`,
    { fields: denied },
  );
}

/** Returns the inventory hosts the identity may use, sorted by name. */
export function usableHosts(identity: ProducerIdentity, inventory: Inventory): string[] {
  return inventory.names().filter((name) => mayUseHost(identity, name));
}

/**
 * Core types of ferry, opened by the glossary that names, logs, errors and docs all follow.
 *
 * - migration: moving one running VM from a source host to a target host, live.
 * - job: the queue entry (BullMQ) that carries one migration request; its id is the migration id.
 * - attempt: one run of a job by a worker; a job has one or more attempts.
 * - host: a hypervisor host named in the inventory; jobs refer to hosts only by that name.
 * - bastion: the machine a worker runs on; it holds SSH connections to the hosts.
 * - worker: the process on a bastion that takes jobs from the queue and runs migrations.
 * - tunnel: the encrypted path that carries the migration stream from the source to the
 *   target's relocation port, in `relay` mode (through the bastion) or `direct` mode (an
 *   OpenSSH forward started on the source).
 * - relocation port: the TCP port the target's hypervisor accepts incoming migrations on
 *   (xend's xend-relocation-port, 8002 by default), bound to the target's loopback.
 * - lock: exclusive hold on a VM by the job that migrates it.
 * - slot: one unit of a host's migration concurrency limit, held by a job.
 * - lease: the time-limited ownership of a lock or slot, renewed while the job runs.
 * - reconcile: decide what to do from where the VM is observed to be, never from the job record.
 * - requester: the identity (person, bot or token) that asked for a migration and reads its result.
 */

/** Final status of a migration, used the same way by the CLI, the API, logs and results. */
export const migrationStatuses = ['completed', 'failed', 'cancelled', 'needs-attention'] as const;
export type MigrationStatus = (typeof migrationStatuses)[number];

/** Path of the migration stream to the target's relocation port. */
export const tunnelModes = ['relay', 'direct'] as const;
export type TunnelMode = (typeof tunnelModes)[number];

/** Steps of one attempt, in order. */
export const migrationPhases = [
  'queued',
  'connect',
  'preflight',
  'tunnel',
  'migrate',
  'verify',
  'done',
] as const;
export type MigrationPhase = (typeof migrationPhases)[number];

/** Progress a worker publishes while a job runs. */
export interface MigrationProgress {
  phase: MigrationPhase;
  /** Bytes carried through the tunnel so far, when the tunnel can count them. */
  bytes?: number;
  /** Bytes the hypervisor expects to send, when known. */
  totalBytes?: number;
  /** Bytes the hypervisor still has to send in this pass, where it reports them (QEMU). */
  remainingBytes?: number;
  /** Guest pages dirtied per second, where the hypervisor reports it (QEMU). */
  dirtyPagesRate?: number;
  /** Downtime the hypervisor expects for the final switch-over, in milliseconds (QEMU). */
  expectedDowntimeMs?: number;
  /** Downtime the hypervisor is allowed now, in milliseconds (QEMU, raised when it does not converge). */
  downtimeLimitMs?: number;
}

/** Observed state of the VM on one host, for results that need a person to look. */
export interface ObservedPlacement {
  host: string;
  /** `running`, `paused`, `migrating`, `absent`, or `unknown` when the host could not be asked. */
  state: string;
  detail?: string;
}

/** The record of a finished migration: the job's return value and what each requester reads. */
export interface MigrationResult {
  jobId: string;
  status: MigrationStatus;
  vm: string;
  source: string;
  target: string;
  requester: string;
  reason?: string;
  ticket?: string;
  tunnel: TunnelMode;
  /** Bytes carried through the tunnel (relay mode), or else sent as the hypervisor counted them (QEMU). */
  bytes?: number;
  /** Time the VM was paused for the final switch-over, in milliseconds, where the hypervisor measures it (QEMU). */
  downtimeMs?: number;
  /** Milliseconds spent in each phase of the last attempt. */
  phaseMs: Partial<Record<MigrationPhase, number>>;
  attempts: number;
  bastion: string;
  startedAt: string;
  finishedAt: string;
  error?: { code: string; message: string };
  observed?: ObservedPlacement[];
}

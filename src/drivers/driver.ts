import type { Duplex } from 'node:stream';

import type { FerryError } from '../errors.js';
import type { HostConfig } from '../config/inventory.js';

/** Output of one command run on a host. */
export interface CommandOutput {
  stdout: string;
  stderr: string;
  code: number | null;
}

/**
 * Command runner a driver gets for one host: it runs a command given as an argument vector. The SSH layer
 * quotes every argument; drivers never build shell text.
 */
export interface HostShell {
  readonly host: HostConfig;
  run(argv: string[], options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<CommandOutput>;
  /**
   * Connects to a unix socket on the host (an SSH streamlocal channel), for drivers that talk
   * to a hypervisor's control socket, such as QEMU's QMP monitor. Throws TUNNEL_FAILED when
   * nothing listens at `path`, and FORWARDING_PROHIBITED when sshd does not allow it.
   */
  openUnixSocket?(path: string): Promise<Duplex>;
}

/** Observed state of a VM on one host. */
export type VmState = 'running' | 'paused' | 'migrating' | 'stopped' | 'absent';

export interface VmObservation {
  host: string;
  state: VmState;
  /** Hypervisor's domain id, when the VM is present. */
  id?: number;
  /** Raw state flags or status text, for reports. */
  detail?: string;
}

/** Facts about a VM that pre-flight checks against the target. */
export interface VmDescription {
  name: string;
  memoryMiB: number;
  vcpus: number;
  /** Paths of the VM's disks, which the target must also reach (shared storage). */
  storagePaths: string[];
  /** Network bridges the VM's interfaces attach to, which must exist on the target. */
  bridges: string[];
}

export interface HostCapacity {
  totalMemoryMiB: number;
  freeMemoryMiB: number;
}

export interface StartMigrationOptions {
  /** Time the migration may take, in milliseconds. */
  timeoutMs: number;
  /** Job id: names the folder of a detached migrate command on the source. */
  jobId: string;
  /** Stops waiting for the migration (the migration itself is ended by abort or the tunnel). */
  signal?: AbortSignal;
  /** The target that prepareTarget returned for this migration, for drivers that watch it too. */
  prepared?: PreparedTarget;
}

/** The target side of one migration, ready to receive the stream. */
export interface PreparedTarget {
  /** TCP port on the target's loopback that accepts the migration stream. */
  port: number;
  /**
   * Undoes the preparation after a failed migration (for example ends an incoming QEMU that
   * never received the VM). Not called after a completed migration.
   */
  discard(): Promise<void>;
  /**
   * Looks on the target for why a migration failed (for xend, its log), returning a permanent
   * error such as an allow-list rejection, or undefined when the target shows no reason.
   */
  diagnose?(): Promise<FerryError | undefined>;
}

/** Progress a driver reads from the hypervisor itself, where it can. */
export interface DriverProgress {
  /** Bytes the hypervisor has sent so far. */
  transferredBytes?: number;
  remainingBytes?: number;
  totalBytes?: number;
  /** Pages dirtied per second, where the hypervisor reports it. */
  dirtyPagesRate?: number;
  /** Expected downtime of the final switch-over, in milliseconds. */
  expectedDowntimeMs?: number;
  /** The downtime the hypervisor is allowed now, in milliseconds, where the driver sets one. */
  downtimeLimitMs?: number;
}

/** Figures of a finished migration as the hypervisor measured them. */
export interface MigrationSummary {
  /** Bytes the hypervisor sent. */
  transferredBytes?: number;
  /** Time the VM was paused for the final switch-over, in milliseconds. */
  downtimeMs?: number;
}

/** A migration the driver has started on the source. */
export interface RunningMigration {
  /** Settles when the hypervisor's migration has ended; rejects with a FerryError on failure. */
  readonly done: Promise<void>;
  /** Reads the hypervisor's own progress; undefined when the driver has none (xm). */
  progress?(): Promise<DriverProgress | undefined>;
  /**
   * Asks the hypervisor to cancel, where it can. Drivers without a cancel (xm) leave it
   * undefined, and the caller cuts the tunnel instead.
   */
  abort?(): Promise<void>;
  /** Returns the hypervisor's figures once `done` has resolved; undefined before or without them (xm). */
  summary?(): MigrationSummary | undefined;
}

/**
 * A hypervisor driver: the hypervisor-specific half of a migration. Adding a hypervisor
 * (xl, libvirt, QEMU) means writing one module that implements this; the migration steps,
 * tunnels, retries and verification stay the same.
 */
export interface HypervisorDriver {
  readonly name: string;
  /** Observes the VM on one host, including an outgoing migration of it. */
  locate(shell: HostShell, vm: string): Promise<VmObservation>;
  /**
   * Lists migrations in flight on the host that involve any VM (outgoing or incoming), such as
   * a `migrating-` domain on xend, so that a new migration can wait for them.
   */
  migrationsInFlight(shell: HostShell): Promise<string[]>;
  /** Reads memory, disks and bridges of a VM present on `shell`'s host. */
  describe(shell: HostShell, vm: string): Promise<VmDescription>;
  capacity(shell: HostShell): Promise<HostCapacity>;
  /** Returns the bridges among `bridges` that do not exist on the host. */
  missingBridges(shell: HostShell, bridges: string[]): Promise<string[]>;
  /** Returns the paths among `paths` that do not exist on the host. */
  missingStoragePaths(shell: HostShell, paths: string[]): Promise<string[]>;
  /** Makes the target ready to receive the VM and returns the port the tunnel must reach. */
  prepareTarget(target: HostShell, vm: string, description: VmDescription): Promise<PreparedTarget>;
  /**
   * Starts migrating the VM from `source` into the tunnel that listens on the source's
   * loopback at `tunnelPort`.
   */
  startMigration(
    source: HostShell,
    vm: string,
    tunnelPort: number,
    options: StartMigrationOptions,
  ): Promise<RunningMigration>;
  /**
   * Tells whether the migrate command that job `jobId` started on `source` still runs, for
   * drivers whose command outlives the SSH session (xm). Reconciliation waits for it.
   */
  migrationRunning?(source: HostShell, jobId: string): Promise<boolean>;
}

import type { HostConfig } from '../config/inventory.js';

/** Output of one command run on a host. */
export interface CommandOutput {
  stdout: string;
  stderr: string;
  code: number | null;
}

/**
 * What a driver may do on a host: run a command given as an argument vector. The SSH layer
 * quotes every argument; drivers never build shell text.
 */
export interface HostShell {
  readonly host: HostConfig;
  run(argv: string[], options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<CommandOutput>;
}

/** Where a VM was seen on one host. */
export type VmState = 'running' | 'paused' | 'migrating' | 'stopped' | 'absent';

export interface VmObservation {
  host: string;
  state: VmState;
  /** Hypervisor's domain id, when the VM is present. */
  id?: number;
  /** Raw state flags or status text, for reports. */
  detail?: string;
}

/** What pre-flight needs to know of a VM. */
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

/**
 * A hypervisor driver: the hypervisor-specific half of a migration. Adding a hypervisor
 * (xl, libvirt, QEMU) means writing one module that implements this.
 */
export interface HypervisorDriver {
  readonly name: string;
  /** Observes the VM on one host, including an outgoing migration of it. */
  locate(shell: HostShell, vm: string): Promise<VmObservation>;
  /** Reads memory, disks and bridges of a VM present on `shell`'s host. */
  describe(shell: HostShell, vm: string): Promise<VmDescription>;
  capacity(shell: HostShell): Promise<HostCapacity>;
  /** Returns the bridges among `bridges` that do not exist on the host. */
  missingBridges(shell: HostShell, bridges: string[]): Promise<string[]>;
  /** Returns the paths among `paths` that do not exist on the host. */
  missingStoragePaths(shell: HostShell, paths: string[]): Promise<string[]>;
  /**
   * Migrates the VM from `source` into the tunnel that listens on the source's loopback at
   * `tunnelPort`; resolves when the hypervisor's migrate command has ended.
   */
  migrate(
    source: HostShell,
    vm: string,
    tunnelPort: number,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<void>;
}

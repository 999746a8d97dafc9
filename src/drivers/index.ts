import type { HostConfig } from '../config/inventory.js';
import type { HypervisorDriver } from './driver.js';
import { qemuDriver } from './qemu/driver.js';
import { xmDriver } from './xm/driver.js';

const drivers: Record<HostConfig['driver'], HypervisorDriver> = { xm: xmDriver, qemu: qemuDriver };

/** Returns the driver named by a host's inventory entry. */
export function driverFor(host: HostConfig): HypervisorDriver {
  return drivers[host.driver];
}

export type {
  CommandOutput,
  HostShell,
  DriverProgress,
  HypervisorDriver,
  MigrationSummary,
  PreparedTarget,
  RunningMigration,
  VmDescription,
  VmObservation,
  VmState,
} from './driver.js';

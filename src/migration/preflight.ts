import type { HostShell, HypervisorDriver, VmDescription } from '../drivers/index.js';
import { FerryError } from '../errors.js';

/**
 * Checks that the target can take the VM: enough free memory, and the VM's bridges and
 * storage paths present. Returns the VM's description for the later steps.
 */
export async function checkTarget(
  driver: HypervisorDriver,
  source: HostShell,
  target: HostShell,
  vm: string,
): Promise<VmDescription> {
  const description = await driver.describe(source, vm);
  const [capacity, missingBridges, missingPaths] = await Promise.all([
    driver.capacity(target),
    driver.missingBridges(target, description.bridges),
    driver.missingStoragePaths(target, description.storagePaths),
  ]);
  const context = { vm, host: target.host.name };
  if (capacity.freeMemoryMiB < description.memoryMiB) {
    throw new FerryError(
      'TARGET_MEMORY_SHORT',
      `${target.host.name} has ${capacity.freeMemoryMiB} MiB free; VM '${vm}' needs ${description.memoryMiB} MiB.`,
      { context },
    );
  }
  if (missingBridges.length > 0) {
    throw new FerryError(
      'TARGET_BRIDGE_MISSING',
      `${target.host.name} lacks the bridge(s) ${missingBridges.join(', ')} that VM '${vm}' uses.`,
      { context },
    );
  }
  if (missingPaths.length > 0) {
    throw new FerryError(
      'TARGET_STORAGE_MISSING',
      `${target.host.name} cannot reach the storage path(s) ${missingPaths.join(', ')} of VM '${vm}'.`,
      { context },
    );
  }
  return description;
}

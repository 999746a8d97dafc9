import { posix } from 'node:path';
import type { DomainSpec } from './types.js';

/** Storage paths and bridges of a host, which a domain's disks and vifs must use. */
export interface HostDevices {
  storagePaths: readonly string[];
  bridges: readonly string[];
}

// Xen numbers virtual disks xvda, xvdb, ... as major 202 with 16 minors each.
const XVD_MAJOR = 202;

/** Returns the file or device path of a disk uname such as 'file:/images/a.img' or 'tap:aio:/images/a.img'. */
export function diskPath(uname: string): string {
  const slash = uname.indexOf('/');
  return slash === -1 ? uname : uname.slice(slash);
}

/** Returns the guest device name of the disk at `index`: xvda, xvdb, ... */
export function diskDevice(index: number): string {
  return `xvd${String.fromCharCode('a'.charCodeAt(0) + index)}`;
}

function isUnder(path: string, folder: string): boolean {
  const file = posix.normalize(path);
  const root = posix.normalize(folder).replace(/\/+$/, '');
  return file === root || file.startsWith(`${root}/`);
}

/**
 * Checks that every disk lies under a storage path of the host and every vif's bridge exists.
 * Returns xend's message for the first device that cannot be connected, or undefined.
 */
export function findDeviceProblem(
  domain: Pick<DomainSpec, 'disks' | 'vifs'>,
  host: HostDevices,
): string | undefined {
  for (const [index, uname] of domain.disks.entries()) {
    const path = diskPath(uname);
    if (!host.storagePaths.some((folder) => isUnder(path, folder))) {
      const device = XVD_MAJOR * 256 + index * 16;
      return `Device ${device} (vbd) could not be connected. ${path} does not exist.`;
    }
  }
  for (const [index, vif] of domain.vifs.entries()) {
    if (!host.bridges.includes(vif.bridge)) {
      return `Device ${index} (vif) could not be connected. Could not find bridge device ${vif.bridge}`;
    }
  }
  return undefined;
}

const NAME_PATTERN = /^[A-Za-z0-9_.:+-]+$/;
const MAC_PATTERN = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Throws an error naming the field and value when a domain spec cannot describe a Xen domain. */
export function validateDomainSpec(spec: DomainSpec, hostName: string): void {
  const where = `domain '${spec.name}' on host '${hostName}'`;
  if (!NAME_PATTERN.test(spec.name) || spec.name === 'Domain-0') {
    throw new Error(
      `Invalid domain name '${spec.name}' on host '${hostName}': use letters, digits and _ . : + - only, and not Domain-0.`,
    );
  }
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB <= 0) {
    throw new Error(
      `Invalid memoryMiB ${spec.memoryMiB} for ${where}: expected a positive whole number of MiB.`,
    );
  }
  if (!Number.isInteger(spec.vcpus) || spec.vcpus <= 0) {
    throw new Error(`Invalid vcpus ${spec.vcpus} for ${where}: expected a positive whole number.`);
  }
  for (const vif of spec.vifs) {
    if (vif.mac !== undefined && !MAC_PATTERN.test(vif.mac)) {
      throw new Error(
        `Invalid MAC address '${vif.mac}' for ${where}: expected six hex pairs such as 00:16:3e:00:00:01.`,
      );
    }
  }
}

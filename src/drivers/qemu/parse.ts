import { FerryError } from '../../errors.js';
import type { HostCapacity } from '../driver.js';

/**
 * Reads a host's memory from /proc/meminfo: MemTotal, and MemAvailable as the free memory a new
 * QEMU can use (Linux 3.14 and later; MemFree on older kernels). Values there are in KiB.
 */
export function parseMemInfo(text: string): HostCapacity {
  const kib = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(\w+):\s+(\d+)\s*kB$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) kib.set(match[1], Number(match[2]));
  }
  const total = kib.get('MemTotal');
  const free = kib.get('MemAvailable') ?? kib.get('MemFree');
  if (total === undefined || free === undefined) {
    throw new FerryError('COMMAND_FAILED', '/proc/meminfo lacks MemTotal or MemAvailable.');
  }
  return { totalMemoryMiB: Math.floor(total / 1024), freeMemoryMiB: Math.floor(free / 1024) };
}

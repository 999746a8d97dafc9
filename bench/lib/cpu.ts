/**
 * CPU time of processes, read from /proc/<pid>/stat (Linux), so that a benchmark can charge
 * each tunnel with the CPU of every process that carries its stream.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

import { descendantsOf } from '../../src/lab/processes.js';

let ticksPerSecond: number | undefined;

/** Clock ticks per second of /proc's CPU counters (getconf CLK_TCK, 100 on common kernels). */
function clockTicks(): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticksPerSecond;
}

/** Returns the user plus system CPU seconds a process has used, or undefined once it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state is field 3, utime 14 and stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks();
  } catch {
    return undefined;
  }
}

/** CPU seconds of a set of processes at one moment, per pid. */
export type CpuSnapshot = Map<number, number>;

/**
 * Reads the CPU seconds of `trees` with all their live descendants, and of `singles` alone
 * (such as this process, whose children are the lab's sshds and the stream endpoints).
 */
export function snapshotCpu(trees: readonly number[], singles: readonly number[] = []): CpuSnapshot {
  const snapshot: CpuSnapshot = new Map();
  const pids = [...singles, ...trees.flatMap((root) => [root, ...descendantsOf(root)])];
  for (const pid of pids) {
    const seconds = processCpuSeconds(pid);
    if (seconds !== undefined) snapshot.set(pid, seconds);
  }
  return snapshot;
}

/**
 * Returns the CPU seconds used between two snapshots. A process that appeared in between
 * counts in full. A process that ended in between is missed, so callers take the second
 * snapshot while the measured processes still run.
 */
export function cpuSecondsBetween(before: CpuSnapshot, after: CpuSnapshot): number {
  let total = 0;
  for (const [pid, seconds] of after) total += seconds - (before.get(pid) ?? 0);
  return total;
}

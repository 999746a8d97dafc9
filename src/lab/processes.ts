import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Returns true while a process with this pid exists (a zombie counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state letter follows the parenthesised command name, which may itself hold spaces.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return undefined;
  }
}

/** Returns every live descendant of `pid` (children, grandchildren, ...), found through /proc. */
export function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const child = Number(entry);
    const parent = parentOf(child);
    if (parent === undefined) continue;
    const list = children.get(parent) ?? [];
    list.push(child);
    children.set(parent, list);
  }
  const result: number[] = [];
  const pending = [pid];
  while (pending.length > 0) {
    const current = pending.pop() as number;
    for (const child of children.get(current) ?? []) {
      result.push(child);
      pending.push(child);
    }
  }
  return result;
}

/** Sends a signal, ignoring a process that is already gone. */
export function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Waits until none of `pids` is alive; returns the ones still alive after `timeoutMs`. */
export async function waitForExit(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(20);
    alive = alive.filter(isAlive);
  }
  return alive;
}

/**
 * Ends a process and all its descendants: SIGTERM first, SIGKILL for whatever is still alive
 * after `graceMs` (SIGKILL at once when `graceMs` is 0). The tree is read before signalling, because children re-parent to init
 * once their parent exits.
 */
export async function killTree(pid: number, graceMs = 2000): Promise<void> {
  const tree = [pid, ...descendantsOf(pid)];
  for (const member of tree) signal(member, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
  const left = await waitForExit(tree, graceMs);
  for (const member of left) signal(member, 'SIGKILL');
  await waitForExit(left, 2000);
}

/** Returns the pids of processes whose environment contains `NAME=value`. */
export function processesWithEnv(name: string, value: string): number[] {
  const needle = `${name}=${value}`;
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (environ.includes(needle) && isAlive(Number(entry))) found.push(Number(entry));
    } catch {
      // The process ended while we read it, or it is not ours to read.
    }
  }
  return found;
}

/**
 * Returns the TCP ports on which any of `pids` holds a listening IPv4 socket, read from
 * /proc/<pid>/fd and /proc/net/tcp. Tests use it to prove a tunnel left no listener behind.
 */
export function listeningPortsOf(pids: number[]): number[] {
  const inodes = new Set<string>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (match?.[1] !== undefined) inodes.add(match[1]);
      } catch {
        // The descriptor closed while we read the folder.
      }
    }
  }
  const ports = new Set<number>();
  const listenState = '0A';
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    if (fields[3] !== listenState || local === undefined || !inodes.has(fields[9] ?? '')) continue;
    ports.add(parseInt(local.split(':')[1] ?? '0', 16));
  }
  return [...ports].sort((a, b) => a - b);
}

import type { HostCapacity, VmDescription } from '../driver.js';
import { parseSexp, sexpFindAll, sexpValue } from './sxp.js';

/** One row of `xm list`. */
export interface XmListRow {
  name: string;
  id: number | undefined;
  memoryMiB: number;
  vcpus: number;
  /** Six flag characters: r running, b blocked, p paused, s shutdown, c crashed, d dying. */
  state: string;
}

/**
 * Parses `xm list` output (`Name ID Mem VCPUs State Time(s)` columns). Names cannot hold
 * spaces, so the row is split on whitespace; a domain being created may have no ID yet.
 */
export function parseXmList(output: string): XmListRow[] {
  const rows: XmListRow[] = [];
  for (const line of output.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5 || fields[0] === 'Name') continue;
    const hasId = fields.length >= 6;
    const [name, ...rest] = fields as [string, ...string[]];
    const values = hasId ? rest : ['', ...rest];
    const memory = Number(values[1]);
    const vcpus = Number(values[2]);
    if (!Number.isFinite(memory) || !Number.isFinite(vcpus)) continue;
    rows.push({
      name,
      id: values[0] === '' ? undefined : Number(values[0]),
      memoryMiB: memory,
      vcpus,
      state: values[3] ?? '------',
    });
  }
  return rows;
}

/** Maps xm's state flags to ferry's VM states. */
export function vmStateOf(flags: string): 'running' | 'paused' | 'stopped' {
  if (flags.includes('p')) return 'paused';
  if (/[scd]/.test(flags)) return 'stopped';
  // `r`, `b`, or no flag at all (a domain between scheduler runs) all mean the domain runs.
  return 'running';
}

/** Reads the storage path out of a vbd `uname` such as `file:/srv/a.img` or `tap:aio:/srv/a.img`. */
export function storagePathOf(uname: string): string {
  const slash = uname.indexOf('/');
  return slash === -1 ? uname : uname.slice(slash);
}

/** Parses `xm list -l VM` into what pre-flight needs. */
export function parseXmListLong(output: string): VmDescription {
  const domain = parseSexp(output).find((node) => Array.isArray(node) && node[0] === 'domain');
  if (domain === undefined) throw new Error('xm list -l printed no (domain ...) expression.');
  const name = sexpValue(domain, 'name');
  const memory = Number(sexpValue(domain, 'memory'));
  const vcpus = Number(sexpValue(domain, 'vcpus') ?? '1');
  if (name === undefined || !Number.isFinite(memory)) {
    throw new Error('xm list -l printed a domain without a name or memory size.');
  }
  const storagePaths = sexpFindAll(domain, 'vbd')
    .map((vbd) => sexpValue(vbd, 'uname'))
    .filter((uname): uname is string => uname !== undefined)
    .map(storagePathOf);
  const bridges = sexpFindAll(domain, 'vif')
    .map((vif) => sexpValue(vif, 'bridge'))
    .filter((bridge): bridge is string => bridge !== undefined);
  return { name, memoryMiB: memory, vcpus, storagePaths, bridges: [...new Set(bridges)] };
}

/** Parses `xm info`'s `key : value` lines. */
export function parseXmInfo(output: string): HostCapacity {
  const values = new Map<string, string>();
  for (const line of output.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) values.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const total = Number(values.get('total_memory'));
  const free = Number(values.get('free_memory'));
  if (!Number.isFinite(total) || !Number.isFinite(free) || values.get('free_memory') === undefined) {
    throw new Error('xm info printed no total_memory and free_memory lines.');
  }
  return { totalMemoryMiB: total, freeMemoryMiB: free };
}

/** Reads bridge names out of `ip -o link show type bridge`. */
export function parseBridges(output: string): string[] {
  const names: string[] = [];
  for (const line of output.split('\n')) {
    const match = /^\d+:\s+([^:@\s]+)[:@]/.exec(line);
    if (match?.[1] !== undefined) names.push(match[1]);
  }
  return names;
}

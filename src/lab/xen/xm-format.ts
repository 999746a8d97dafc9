import { diskDevice } from './devices.js';
import { formatSxp, sxpList } from './sxp.js';
import type { DomainView } from './types.js';

/** One row of `xm list`. */
export type ListRow = Pick<DomainView, 'name' | 'id' | 'memoryMiB' | 'vcpus' | 'state' | 'cpuTimeSeconds'>;

/**
 * Formats `xm list` output in xm's columns: name left-aligned in 40, then ID, Mem and VCPUs
 * right-aligned in 5, State in 10 and Time(s) in 9 with one decimal, separated by one space.
 */
export function formatList(rows: readonly ListRow[]): string {
  const line = (cells: [string, string, string, string, string, string]): string =>
    [
      cells[0].padEnd(40),
      cells[1].padStart(5),
      cells[2].padStart(5),
      cells[3].padStart(5),
      cells[4].padStart(10),
      cells[5].padStart(9),
    ].join(' ');

  const lines = [line(['Name', 'ID', 'Mem', 'VCPUs', 'State', 'Time(s)'])];
  for (const row of rows) {
    lines.push(
      line([
        row.name,
        String(row.id),
        String(row.memoryMiB),
        String(row.vcpus),
        row.state,
        row.cpuTimeSeconds.toFixed(1),
      ]),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Formats `xm list -l VM`: the domain's configuration as a pretty-printed s-expression. */
export function formatLongDomain(domain: DomainView): string {
  const devices = [
    ...domain.disks.map((uname, index) =>
      sxpList(
        'device',
        sxpList('vbd', sxpList('uname', uname), sxpList('dev', diskDevice(index)), sxpList('mode', 'w')),
      ),
    ),
    ...domain.vifs.map((vif) =>
      sxpList(
        'device',
        sxpList(
          'vif',
          sxpList('bridge', vif.bridge),
          sxpList('mac', vif.mac),
          sxpList('script', 'vif-bridge'),
        ),
      ),
    ),
  ];
  const expression = sxpList(
    'domain',
    sxpList('domid', domain.id),
    sxpList('uuid', domain.uuid),
    sxpList('name', domain.name),
    sxpList('memory', domain.memoryMiB),
    sxpList('maxmem', domain.memoryMiB),
    sxpList('vcpus', domain.vcpus),
    sxpList('state', domain.state),
    sxpList('cpu_time', domain.cpuTimeSeconds.toFixed(1)),
    ...devices,
  );
  return `${formatSxp(expression)}\n`;
}

/** Host facts that `xm info` reports. */
export interface HostInfo {
  host: string;
  cpus: number;
  totalMemoryMiB: number;
  freeMemoryMiB: number;
}

/** Formats `xm info` as `key : value` lines, with the keys padded as xm pads them. */
export function formatInfo(info: HostInfo): string {
  const entries: Array<[string, string | number]> = [
    ['host', info.host],
    ['release', '2.6.18.8-xen'],
    ['version', '#1 SMP ferry lab'],
    ['machine', 'x86_64'],
    ['nr_cpus', info.cpus],
    ['nr_nodes', 1],
    ['cores_per_socket', info.cpus],
    ['threads_per_core', 1],
    ['total_memory', info.totalMemoryMiB],
    ['free_memory', info.freeMemoryMiB],
    ['xen_major', 3],
    ['xen_minor', 4],
    ['xen_extra', '.4'],
    ['xen_caps', 'xen-3.0-x86_64 xen-3.0-x86_32p'],
    ['xen_scheduler', 'credit'],
    ['xen_pagesize', 4096],
    ['xend_config_format', 4],
  ];
  return entries.map(([key, value]) => `${key.padEnd(23)}: ${value}\n`).join('');
}

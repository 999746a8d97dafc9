import { describe, expect, it } from 'vitest';

import {
  parseBridges,
  parseXmInfo,
  parseXmList,
  parseXmListLong,
  storagePathOf,
  vmStateOf,
} from '../../../src/drivers/xm/parse.js';

const xmList = [
  'Name                                        ID   Mem VCPUs      State   Time(s)',
  'Domain-0                                     0  1024     2     r-----    812.3',
  'migrating-web01                              3   512     1     -b----     10.2',
  'db02                                        12  2048     4     --p---      0.0',
  'new03                                           256     1     ------      0.0',
].join('\n');

describe('parseXmList', () => {
  it('reads every row with its columns', () => {
    const rows = parseXmList(xmList);
    expect(rows.map((row) => row.name)).toEqual(['Domain-0', 'migrating-web01', 'db02', 'new03']);
    expect(rows[1]).toEqual({ name: 'migrating-web01', id: 3, memoryMiB: 512, vcpus: 1, state: '-b----' });
  });

  it('accepts a domain without an id yet', () => {
    const row = parseXmList(xmList).find((candidate) => candidate.name === 'new03');
    expect(row?.id).toBeUndefined();
    expect(row?.memoryMiB).toBe(256);
  });

  it('ignores an error line', () => {
    expect(parseXmList("Error: Domain 'x' does not exist.")).toEqual([]);
  });
});

describe('vmStateOf', () => {
  it.each([
    ['r-----', 'running'],
    ['-b----', 'running'],
    ['------', 'running'],
    ['--p---', 'paused'],
    ['---s--', 'stopped'],
    ['----c-', 'stopped'],
  ])('maps %s to %s', (flags, state) => {
    expect(vmStateOf(flags)).toBe(state);
  });
});

describe('parseXmListLong', () => {
  const long = `(domain
    (domid 3)
    (name web01)
    (memory 512)
    (vcpus 2)
    (state -b----)
    (device (vbd (uname file:/srv/xen/web01.img) (dev xvda)))
    (device (vbd (uname 'tap:aio:/srv/xen/web01-data.img') (dev xvdb)))
    (device (vif (bridge xenbr0) (mac 00:16:3e:00:00:01)))
    (device (vif (bridge xenbr1) (mac 00:16:3e:00:00:02)))
    (device (vif (bridge xenbr0) (mac 00:16:3e:00:00:03)))
)`;

  it('reads memory, disks and bridges', () => {
    expect(parseXmListLong(long)).toEqual({
      name: 'web01',
      memoryMiB: 512,
      vcpus: 2,
      storagePaths: ['/srv/xen/web01.img', '/srv/xen/web01-data.img'],
      bridges: ['xenbr0', 'xenbr1'],
    });
  });

  it('rejects output without a domain', () => {
    expect(() => parseXmListLong('(other (a b))')).toThrow(/no \(domain/);
  });
});

describe('storagePathOf', () => {
  it.each([
    ['file:/srv/a.img', '/srv/a.img'],
    ['tap:aio:/srv/b.img', '/srv/b.img'],
    ['phy:/dev/vg0/web01', '/dev/vg0/web01'],
  ])('reads %s', (uname, path) => {
    expect(storagePathOf(uname)).toBe(path);
  });
});

describe('parseXmInfo', () => {
  it('reads total and free memory', () => {
    const info =
      'host                   : xen-b\ntotal_memory           : 8192\nfree_memory            : 3072\n';
    expect(parseXmInfo(info)).toEqual({ totalMemoryMiB: 8192, freeMemoryMiB: 3072 });
  });

  it('rejects output without memory lines', () => {
    expect(() => parseXmInfo('host : x\n')).toThrow(/free_memory/);
  });
});

describe('parseBridges', () => {
  it('reads bridge names from ip -o link output', () => {
    const output =
      '4: xenbr0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT\\    link/ether 02:00:00:00:00:04\n' +
      '7: br-storage@if6: <BROADCAST,MULTICAST> mtu 9000 qdisc noop state DOWN\\    link/ether 02:00:00:00:00:07\n';
    expect(parseBridges(output)).toEqual(['xenbr0', 'br-storage']);
  });
});

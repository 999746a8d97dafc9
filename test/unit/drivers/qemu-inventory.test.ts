import { describe, expect, it } from 'vitest';

import { parseInventory } from '../../../src/config/inventory.js';
import { driverFor } from '../../../src/drivers/index.js';
import { fillTemplate } from '../../../src/drivers/qemu/monitor.js';

const kvmHost = {
  address: '10.0.0.7',
  user: 'ferry',
  identityFile: '/etc/ferry/id_ed25519',
  hostKey: `SHA256:${'A'.repeat(43)}`,
  driver: 'qemu',
  qemu: {
    incomingCommand: ['/usr/local/sbin/vm-start', '--incoming', '{vm}', '{monitor}'],
    monitorSocket: '/run/vms/{vm}.qmp',
  },
};

function parseError(host: object): string {
  try {
    parseInventory({ hosts: { 'kvm-a': host } });
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the inventory to be rejected');
}

describe('qemu inventory settings', () => {
  it('fills the defaults', () => {
    const host = parseInventory({ hosts: { 'kvm-a': kvmHost } }).host('kvm-a');
    expect(host.qemu).toEqual({
      ...kvmHost.qemu,
      incomingPorts: [61000, 65535],
      maxBandwidthMiBps: 0,
      downtimeLimitMs: 300,
      maxDowntimeLimitMs: 2000,
      downtimeSteps: 5,
      passesPerDowntimeStep: 3,
      stallTimeoutMs: 60_000,
    });
    expect(driverFor(host).name).toBe('qemu');
  });

  it('requires the qemu section', () => {
    expect(parseError({ ...kvmHost, qemu: undefined })).toContain('qemu');
  });

  it('requires {vm} in the monitor path', () => {
    expect(parseError({ ...kvmHost, qemu: { ...kvmHost.qemu, monitorSocket: '/run/vms/qmp' } })).toContain(
      'must contain {vm}',
    );
  });

  it('requires an absolute incoming command', () => {
    expect(parseError({ ...kvmHost, qemu: { ...kvmHost.qemu, incomingCommand: ['vm-start'] } })).toContain(
      'absolute path',
    );
  });

  it('rejects a maximum downtime below the first', () => {
    const qemu = { ...kvmHost.qemu, downtimeLimitMs: 500, maxDowntimeLimitMs: 400 };
    expect(parseError({ ...kvmHost, qemu })).toContain('maxDowntimeLimitMs');
  });

  it('fills every placeholder of a template', () => {
    expect(fillTemplate('/run/{vm}/{vm}.qmp {other}', { vm: 'web01' })).toBe('/run/web01/web01.qmp {other}');
  });
});

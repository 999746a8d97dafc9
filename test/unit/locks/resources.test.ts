import { describe, expect, it } from 'vitest';

import { parseInventory } from '../../../src/config/inventory.js';
import { isFerryError } from '../../../src/errors.js';
import { compileLockOptions } from '../../../src/locks/options.js';
import { hostOfResource, migrationResources, vmOfInFlight } from '../../../src/locks/resources.js';

const host = (limits?: object) => ({
  address: '10.0.0.5',
  user: 'ferry',
  identityFile: '/etc/ferry/id_ed25519',
  hostKey: `SHA256:${'A'.repeat(43)}`,
  ...(limits === undefined ? {} : { limits }),
});

const subject = { vm: 'web01', source: 'xen-a', target: 'xen-b' };

describe('migrationResources', () => {
  it('takes one shared slot per host by default', () => {
    const inventory = parseInventory({ hosts: { 'xen-a': host(), 'xen-b': host() } });
    expect(migrationResources(subject, inventory, undefined)).toEqual([
      { name: 'host:xen-a', limit: 1 },
      { name: 'host:xen-b', limit: 1 },
      { name: 'vm:web01', limit: 1 },
    ]);
  });

  it('uses per-host limits and the global cap', () => {
    const inventory = parseInventory({
      hosts: { 'xen-a': host({ migrations: 2 }), 'xen-b': host({ migrations: 3 }) },
    });
    expect(migrationResources(subject, inventory, 5)).toEqual([
      { name: 'global', limit: 5 },
      { name: 'host:xen-a', limit: 2 },
      { name: 'host:xen-b', limit: 3 },
      { name: 'vm:web01', limit: 1 },
    ]);
  });

  it('counts directions apart when outgoing or incoming is set', () => {
    const inventory = parseInventory({
      hosts: {
        'xen-a': host({ outgoing: 2 }),
        'xen-b': host({ incoming: 3, migrations: 4 }),
      },
    });
    expect(migrationResources(subject, inventory, undefined)).toEqual([
      { name: 'host-in:xen-b', limit: 3 },
      { name: 'host-out:xen-a', limit: 2 },
      { name: 'host:xen-b', limit: 4 },
      { name: 'vm:web01', limit: 1 },
    ]);
  });

  it('rejects a limit below 1 in the inventory', () => {
    let caught: unknown;
    try {
      parseInventory({ hosts: { 'xen-a': host({ migrations: 0 }) } });
    } catch (error) {
      caught = error;
    }
    expect(isFerryError(caught, 'INVALID_INVENTORY')).toBe(true);
    expect((caught as Error).message).toContain('hosts.xen-a.limits.migrations');
  });

  it('throws UNKNOWN_HOST for a host outside the inventory', () => {
    const inventory = parseInventory({ hosts: { 'xen-a': host() } });
    expect(() => migrationResources(subject, inventory, undefined)).toThrow(/xen-b/);
  });
});

describe('resource names', () => {
  it('maps host resources to their host', () => {
    expect(hostOfResource('host:xen-a')).toBe('xen-a');
    expect(hostOfResource('host-out:xen-a')).toBe('xen-a');
    expect(hostOfResource('host-in:xen-b')).toBe('xen-b');
    expect(hostOfResource('vm:web01')).toBeUndefined();
    expect(hostOfResource('global')).toBeUndefined();
  });

  it('reads the VM name of in-flight entries', () => {
    expect(vmOfInFlight('migrating-web01 (outgoing)')).toBe('web01');
    expect(vmOfInFlight('web02 (paused, possibly incoming)')).toBe('web02');
    expect(vmOfInFlight('db01 (incoming)')).toBe('db01');
  });
});

describe('compileLockOptions', () => {
  it('fills the defaults', () => {
    expect(compileLockOptions()).toMatchObject({
      leaseMs: 30_000,
      renewEveryMs: 5_000,
      renewalDeadlineMs: 15_000,
      heartbeatMs: 10_000,
      ageingMs: 600_000,
      maxWaitMs: 21_600_000,
      maxMigrations: undefined,
    });
  });

  it('names the field of an invalid value', () => {
    for (const [options, field] of [
      [{ leaseMs: 100 }, 'leaseMs'],
      [{ ageingMs: -1 }, 'ageingMs'],
      [{ maxWaitMs: 0.5 }, 'maxWaitMs'],
      [{ maxMigrations: 0 }, 'maxMigrations'],
    ] as const) {
      expect(() => compileLockOptions(options)).toThrow(field);
    }
  });
});

import { describe, expect, it } from 'vitest';

import { describeLocks } from '../../../src/cli/locks.js';
import { formatDuration } from '../../../src/locks/describe.js';
import { handovers, type LockEvent } from '../../../src/locks/events.js';
import { groupByHost } from '../../../src/locks/snapshot.js';
import type { RawLockSnapshot } from '../../../src/locks/store.js';

const resources = (source: string, target: string, vm: string): string =>
  JSON.stringify([
    [`host:${source}`, 1],
    [`host:${target}`, 1],
    [`vm:${vm}`, 1],
  ]);

const raw: RawLockSnapshot = {
  now: 100_000,
  holders: {
    'host:xen-a': [{ job: '7', expiresAt: 120_000 }],
    'host:xen-b': [{ job: '7', expiresAt: 120_000 }],
    'vm:web01': [{ job: '7', expiresAt: 120_000 }],
  },
  waiting: [
    { job: '9', since: 40_000 },
    { job: '8', since: 70_000 },
  ],
  jobs: {
    '7': {
      state: 'holding',
      vm: 'web01',
      source: 'xen-a',
      target: 'xen-b',
      bastion: 'b1',
      since: '10000',
      grantedAt: '55000',
      expiresAt: '120000',
      resources: resources('xen-a', 'xen-b', 'web01'),
    },
    '8': {
      state: 'waiting',
      vm: 'web02',
      source: 'xen-c',
      target: 'xen-a',
      bastion: 'b2',
      since: '70000',
      blocked: '["host:xen-a"]',
      reserving: '0',
      resources: resources('xen-c', 'xen-a', 'web02'),
    },
    '9': {
      state: 'waiting',
      vm: 'web03',
      source: 'xen-b',
      target: 'xen-a',
      bastion: 'b1',
      since: '40000',
      blocked: '["host:xen-a","host:xen-b"]',
      reserving: '1',
      resources: resources('xen-b', 'xen-a', 'web03'),
    },
  },
};

describe('groupByHost', () => {
  it('lists holders and waiters per host, oldest first', () => {
    const snapshot = groupByHost(raw);
    expect(snapshot.hosts.map((host) => host.host)).toEqual(['xen-a', 'xen-b', 'xen-c']);
    const xenA = snapshot.hosts[0];
    expect(xenA?.holders.map((job) => job.jobId)).toEqual(['7']);
    expect(xenA?.waiting.map((job) => job.jobId)).toEqual(['9', '8']);
    expect(xenA?.pools).toEqual([{ resource: 'host:xen-a', direction: 'both', limits: [1], inUse: 1 }]);
    expect(snapshot.hosts[2]?.pools).toEqual([
      { resource: 'host:xen-c', direction: 'both', limits: [1], inUse: 0 },
    ]);
    expect(snapshot.global).toBeUndefined();
  });

  it('formats the lines of ferry locks', () => {
    expect(describeLocks(groupByHost(raw))).toEqual([
      'xen-a: slots 1 of 1 in use',
      '  holding  job 7  web01 xen-a -> xen-b  for 45 s, waited 45 s, bastion b1',
      '  waiting  job 9  web03 xen-b -> xen-a  for 1 min 0 s, blocked by host xen-a, host xen-b, reserving its slots, bastion b1',
      '  waiting  job 8  web02 xen-c -> xen-a  for 30 s, blocked by host xen-a, bastion b2',
      'xen-b: slots 1 of 1 in use',
      '  holding  job 7  web01 xen-a -> xen-b  for 45 s, waited 45 s, bastion b1',
      '  waiting  job 9  web03 xen-b -> xen-a  for 1 min 0 s, blocked by host xen-a, host xen-b, reserving its slots, bastion b1',
      'xen-c: slots 0 of 1 in use',
      '  waiting  job 8  web02 xen-c -> xen-a  for 30 s, blocked by host xen-a, bastion b2',
    ]);
  });

  it('says so when nothing holds or waits', () => {
    expect(describeLocks(groupByHost({ now: 1, holders: {}, waiting: [], jobs: {} }))).toEqual([
      'No migration holds or waits for a host slot.',
    ]);
  });
});

describe('handovers', () => {
  const event = (
    type: string,
    jobId: string,
    at: number,
    fields: Record<string, string> = {},
  ): LockEvent => ({
    id: `${at}-0`,
    type,
    jobId,
    at,
    fields,
  });

  it('measures from the release to the start of the job it freed', () => {
    const events = [
      event('released', '1', 1_000),
      event('granted', '2', 1_000, { releasedBy: '1' }),
      event('started', '2', 1_040, {
        releasedBy: '1',
        releasedAt: '1000',
        confirmedAt: '1003',
        grantedAt: '1000',
      }),
      event('started', '3', 1_100, {
        releasedBy: '',
        releasedAt: '',
        confirmedAt: '1090',
        grantedAt: '1090',
      }),
    ];
    expect(handovers(events)).toEqual([
      { releasedBy: '1', jobId: '2', releasedAt: 1_000, confirmedAt: 1_003, startedAt: 1_040, gapMs: 40 },
    ]);
  });
});

describe('formatDuration', () => {
  it('uses the largest fitting units', () => {
    expect(formatDuration(350)).toBe('350 ms');
    expect(formatDuration(42_000)).toBe('42 s');
    expect(formatDuration(185_000)).toBe('3 min 5 s');
    expect(formatDuration(7_800_000)).toBe('2 h 10 min');
  });
});

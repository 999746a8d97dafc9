import { describe, expect, it } from 'vitest';

import type { VmObservation, VmState } from '../../../src/drivers/index.js';
import { decide, type Observation } from '../../../src/migration/reconcile.js';
import { retryDelayMs } from '../../../src/migration/backoff.js';

function seen(source: VmState, target: VmState, commandRunning = false): Observation {
  const on = (host: string, state: VmState): VmObservation => ({ host, state });
  return {
    source: on('xen-a', source),
    target: on('xen-b', target),
    commandRunning,
    placements: [],
  };
}

describe('decide', () => {
  it.each([
    ['running', 'absent', false, 'migrate'],
    ['absent', 'running', false, 'done'],
    ['migrating', 'paused', false, 'wait'],
    ['migrating', 'absent', false, 'wait'],
    ['running', 'paused', false, 'wait'],
    ['running', 'absent', true, 'wait'],
  ] as const)('source %s, target %s, command running %s: %s', (source, target, running, kind) => {
    expect(decide(seen(source, target, running), 'web01', true).kind).toBe(kind);
  });

  it('rejects a VM found nowhere before any migration started', () => {
    const decision = decide(seen('absent', 'absent'), 'web01', false);
    expect(decision.kind).toBe('reject');
    if (decision.kind === 'reject') expect(decision.error.code).toBe('VM_NOT_FOUND');
  });

  it('asks a person when a started migration left the VM nowhere', () => {
    const decision = decide(seen('absent', 'absent'), 'web01', true);
    expect(decision.kind).toBe('attention');
  });

  it('asks a person when the VM runs on both hosts', () => {
    const decision = decide(seen('running', 'running'), 'web01', false);
    expect(decision.kind).toBe('attention');
    if (decision.kind === 'attention') expect(decision.reason).toContain('both hosts');
  });

  it('rejects a stopped VM on a first attempt', () => {
    const decision = decide(seen('stopped', 'absent'), 'web01', false);
    expect(decision.kind).toBe('reject');
    if (decision.kind === 'reject') expect(decision.error.code).toBe('VM_NOT_RUNNING');
  });

  it('asks a person when a started migration left the VM stopped', () => {
    expect(decide(seen('stopped', 'absent'), 'web01', true).kind).toBe('attention');
  });
});

describe('retryDelayMs', () => {
  const backoff = { baseDelayMs: 1000, maxDelayMs: 10_000 };

  it('doubles per attempt within half and all of the ceiling', () => {
    expect(retryDelayMs(1, backoff, () => 0)).toBe(500);
    expect(retryDelayMs(1, backoff, () => 1)).toBe(1000);
    expect(retryDelayMs(3, backoff, () => 0)).toBe(2000);
    expect(retryDelayMs(3, backoff, () => 1)).toBe(4000);
  });

  it('stops at the maximum', () => {
    expect(retryDelayMs(20, backoff, () => 1)).toBe(10_000);
  });
});

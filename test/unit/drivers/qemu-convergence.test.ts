import { describe, expect, it } from 'vitest';

import { ConvergencePolicy, type ConvergencePolicyOptions } from '../../../src/drivers/qemu/convergence.js';

const options: ConvergencePolicyOptions = {
  downtimeLimitMs: 300,
  maxDowntimeLimitMs: 900,
  downtimeSteps: 3,
  passesPerStep: 2,
  stallTimeoutMs: 5000,
};

/** Feeds readings one second apart, each with more bytes sent, and returns the actions. */
function run(policy: ConvergencePolicy, passes: number[]) {
  return passes.map((pass, index) =>
    policy.observe({ atMs: index * 1000, transferredBytes: (index + 1) * 1_000_000, passes: pass }),
  );
}

describe('ConvergencePolicy', () => {
  it('continues while passes are few', () => {
    const policy = new ConvergencePolicy(options);
    expect(run(policy, [1, 1, 2])).toEqual([
      { kind: 'continue' },
      { kind: 'continue' },
      { kind: 'continue' },
    ]);
    expect(policy.downtimeLimitMs).toBe(300);
  });

  it('raises the limit in equal steps', () => {
    const policy = new ConvergencePolicy(options);
    const actions = run(policy, [1, 3, 4, 5, 6]);
    expect(actions.filter((action) => action.kind === 'raise-downtime')).toEqual([
      { kind: 'raise-downtime', downtimeLimitMs: 500, step: 1 },
      { kind: 'raise-downtime', downtimeLimitMs: 700, step: 2 },
    ]);
    expect(policy.downtimeLimitMs).toBe(700);
  });

  it('gives up after the maximum was tried', () => {
    const policy = new ConvergencePolicy(options);
    const actions = run(policy, [1, 3, 5, 7, 8, 9]);
    expect(actions.map((action) => action.kind)).toEqual([
      'continue',
      'raise-downtime',
      'raise-downtime',
      'raise-downtime',
      'continue',
      'give-up',
    ]);
    const last = actions.at(-1);
    expect(last).toMatchObject({ kind: 'give-up', reason: 'not-converging' });
    expect(last?.kind === 'give-up' ? last.detail : '').toContain('900 ms');
  });

  it('gives up at once without steps', () => {
    const policy = new ConvergencePolicy({ ...options, downtimeSteps: 0 });
    expect(run(policy, [1, 2, 3]).map((action) => action.kind)).toEqual(['continue', 'continue', 'give-up']);
    expect(policy.downtimeLimitMs).toBe(300);
  });

  it('reports a stall after the timeout without bytes', () => {
    const policy = new ConvergencePolicy(options);
    expect(policy.observe({ atMs: 0, transferredBytes: 10, passes: 1 })).toEqual({ kind: 'continue' });
    expect(policy.observe({ atMs: 4999, transferredBytes: 10, passes: 1 })).toEqual({ kind: 'continue' });
    expect(policy.observe({ atMs: 5000, transferredBytes: 10, passes: 1 })).toMatchObject({
      kind: 'give-up',
      reason: 'stalled',
    });
  });

  it('restarts the stall clock on progress', () => {
    const policy = new ConvergencePolicy(options);
    policy.observe({ atMs: 0, transferredBytes: 10, passes: 1 });
    policy.observe({ atMs: 4000, transferredBytes: 20, passes: 1 });
    expect(policy.observe({ atMs: 8000, transferredBytes: 20, passes: 1 })).toEqual({ kind: 'continue' });
  });
});

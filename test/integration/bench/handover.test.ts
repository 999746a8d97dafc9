import { describe, expect, it } from 'vitest';

import { runHandoverBench } from '../../../bench/handover.js';

describe('hand-over benchmark smoke run', () => {
  it('measures a gap per hand-over', async () => {
    const result = await runHandoverBench({ migrations: 3 });

    expect(result.lockEvents).toBeGreaterThan(0);
    expect(result.lockGapMs.count).toBe(2);
    expect(result.lockGapMs.p50).toBeGreaterThanOrEqual(0);
    expect(result.transferGapMs.count).toBe(2);
    expect(result.transferGapMs.p50).toBeGreaterThan(0);
  });
});

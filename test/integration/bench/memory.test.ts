import { describe, expect, it } from 'vitest';

import { runMemoryBench } from '../../../bench/memory.js';

describe('memory benchmark smoke run', () => {
  it('samples the worker while its tunnels run', async () => {
    const result = await runMemoryBench({ tunnels: 2, mibPerTunnel: 4 });

    expect(result.baselineMiB).toBeGreaterThan(0);
    expect(result.peakMiB).toBeGreaterThanOrEqual(result.baselineMiB);
    expect(result.concurrentTransfers).toBeGreaterThanOrEqual(1);
    expect(result.aggregateMBPerSecond).toBeGreaterThan(0);
    expect(result.samples.length).toBeGreaterThan(0);
  });
});

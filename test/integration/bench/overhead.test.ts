import { describe, expect, it } from 'vitest';

import { runOverheadBench } from '../../../bench/overhead.js';

describe('overhead benchmark smoke run', () => {
  it('splits both windows into ferry and lab time', async () => {
    const result = await runOverheadBench({ migrations: 3, warmup: 1 });

    expect(result.variants.map((variant) => variant.reuseConnections)).toEqual([true, false]);
    for (const variant of result.variants) {
      const label = variant.reuseConnections ? 'reused' : 'new';
      expect(variant.timings, label).toHaveLength(3);
      for (const timing of variant.timings) {
        expect(timing.toStartMs, label).toBeGreaterThan(0);
        expect(timing.toStartLabMs, label).toBeGreaterThan(0);
        expect(timing.toStartLabMs, label).toBeLessThanOrEqual(timing.toStartMs);
        expect(timing.toResultMs, label).toBeGreaterThan(0);
        expect(timing.toResultLabMs + timing.exitPollMs, label).toBeLessThanOrEqual(timing.toResultMs + 1);
      }
      expect(variant.toStart.ferry.p50, label).toBeGreaterThanOrEqual(0);
      expect(variant.ferryBoth.p95, label).toBeGreaterThanOrEqual(variant.ferryBoth.p50);
    }
  });

  it('counts handshakes only without reuse', async () => {
    const result = await runOverheadBench({ migrations: 2, warmup: 1 });
    const [reused, fresh] = result.variants;

    expect(reused?.handshakesPerMigration).toBe(0);
    expect(fresh?.handshakesPerMigration).toBeGreaterThanOrEqual(2);
  });
});

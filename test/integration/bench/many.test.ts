import { describe, expect, it } from 'vitest';

import { runManyBench } from '../../../bench/many.js';

describe('many-migrations benchmark smoke run', () => {
  it('runs the jobs through one and two worker processes', async () => {
    const result = await runManyBench({ migrations: 6, hosts: 4, workerCounts: [1, 2] });

    expect(result.runs.map((run) => run.workers)).toEqual([1, 2]);
    for (const run of result.runs) {
      expect(run.failed, `${run.workers} workers`).toBe(0);
      expect(run.migrationsPerSecond, `${run.workers} workers`).toBeGreaterThan(0);
      expect(run.redisCommandsPerMigration, `${run.workers} workers`).toBeGreaterThan(0);
      expect(run.scriptCallsPerMigration, `${run.workers} workers`).toBeGreaterThan(0);
      expect(run.topCommands.length, `${run.workers} workers`).toBeGreaterThan(0);
    }
  });
});

/** The record of one `npm run bench`, as bench/results/latest.json stores it. */
import type { HandoverBenchResult } from './handover.js';
import type { Machine } from './lib/machine.js';
import type { ManyBenchResult } from './many.js';
import type { MemoryBenchResult } from './memory.js';
import type { OverheadBenchResult } from './overhead.js';
import type { TunnelBenchResult } from './tunnels.js';

export const measureNames = ['tunnels', 'overhead', 'handover', 'many', 'memory'] as const;
export type MeasureName = (typeof measureNames)[number];

export interface BenchMeasures {
  tunnels?: TunnelBenchResult;
  overhead?: OverheadBenchResult;
  handover?: HandoverBenchResult;
  many?: ManyBenchResult;
  memory?: MemoryBenchResult;
}

export interface BenchRun {
  /** ISO 8601 times of the run's start and end. */
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  /** True when every measure ran at its full size. */
  complete: boolean;
  machine: Machine;
  /** 1-minute load average at the start, at the end, and the highest seen in between. */
  load: { start: number; end: number; max: number };
  measures: BenchMeasures;
  /** Seconds each measure took. */
  measureSeconds: Partial<Record<MeasureName, number>>;
  /** Measures that did not run or failed, with the reason. */
  notMeasured: Partial<Record<MeasureName, string>>;
}

/** Summary statistics of the benchmarks. */

/** Percentiles of one measure, in the unit of its samples. */
export interface Summary {
  count: number;
  p50: number;
  p95: number;
  min: number;
  max: number;
  mean: number;
}

/**
 * Returns the p-th percentile (0-100) of `values` by linear interpolation between the two
 * nearest ranks, as NumPy's default does. Returns NaN for an empty list.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const lowValue = sorted[low] as number;
  const highValue = sorted[high] as number;
  return lowValue + (highValue - lowValue) * (rank - low);
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

export function summarize(values: readonly number[]): Summary {
  const count = values.length;
  return {
    count,
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    min: count === 0 ? Number.NaN : Math.min(...values),
    max: count === 0 ? Number.NaN : Math.max(...values),
    mean: count === 0 ? Number.NaN : values.reduce((sum, value) => sum + value, 0) / count,
  };
}

/** A time interval in epoch milliseconds. */
export interface Interval {
  start: number;
  end: number;
}

/**
 * Returns the milliseconds of [windowStart, windowEnd] covered by at least one of
 * `intervals`, so that commands that overlap in time are counted once.
 */
export function coveredMs(intervals: readonly Interval[], windowStart: number, windowEnd: number): number {
  const clipped = intervals
    .map((interval) => ({
      start: Math.max(interval.start, windowStart),
      end: Math.min(interval.end, windowEnd),
    }))
    .filter((interval) => interval.end > interval.start)
    .sort((a, b) => a.start - b.start);
  let covered = 0;
  let reach = windowStart;
  for (const interval of clipped) {
    const start = Math.max(interval.start, reach);
    if (interval.end > start) {
      covered += interval.end - start;
      reach = interval.end;
    }
  }
  return covered;
}

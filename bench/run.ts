/**
 * `npm run bench`: runs every measure, then writes BENCHMARKS.md at the repository root and
 * the raw figures to bench/results/latest.json.
 *
 * Flags (for development; a run with flags prints the report and writes no file):
 * - `--quick`: every measure at a small size, in well under a minute of measuring.
 * - `--only NAME,...`: only these measures (tunnels, overhead, handover, many, memory).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { runHandoverBench } from './handover.js';
import { describeMachine, loadAverages } from './lib/machine.js';
import { repositoryRoot } from './lib/paths.js';
import { runManyBench } from './many.js';
import { runMemoryBench } from './memory.js';
import { runOverheadBench } from './overhead.js';
import { renderReport } from './report.js';
import { measureNames, type BenchMeasures, type BenchRun, type MeasureName } from './run-result.js';
import { runTunnelBench } from './tunnels.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
  },
});

const quick = values.quick === true;
const only = values.only?.split(',').map((name) => name.trim());
for (const name of only ?? []) {
  if (!(measureNames as readonly string[]).includes(name)) {
    console.error(`bench: unknown measure '${name}' in --only; use ${measureNames.join(', ')}.`);
    process.exit(2);
  }
}
const selected = measureNames.filter((name) => only === undefined || only.includes(name));

function progress(line: string): void {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
}

/** Each measure with its full size and its --quick size. */
const measures: Record<MeasureName, (measures: BenchMeasures) => Promise<void>> = {
  tunnels: async (results) => {
    results.tunnels = await runTunnelBench(
      quick ? { bytes: 16 * 2 ** 20, runs: 1, progress } : { bytes: 2 ** 30, runs: 3, progress },
    );
  },
  overhead: async (results) => {
    results.overhead = await runOverheadBench(
      quick ? { migrations: 5, warmup: 1, progress } : { migrations: 100, warmup: 3, progress },
    );
  },
  handover: async (results) => {
    results.handover = await runHandoverBench(
      quick ? { migrations: 5, progress } : { migrations: 41, progress },
    );
  },
  many: async (results) => {
    results.many = await runManyBench(
      quick
        ? { migrations: 20, hosts: 6, workerCounts: [1, 2], progress }
        : { migrations: 1000, hosts: 50, workerCounts: [1, 2, 4], progress },
    );
  },
  memory: async (results) => {
    results.memory = await runMemoryBench(
      quick ? { tunnels: 4, mibPerTunnel: 8, progress } : { tunnels: 20, mibPerTunnel: 128, progress },
    );
  },
};

const startedAt = new Date();
const load = { start: loadAverages()[0], end: 0, max: loadAverages()[0] };
const loadSampler = setInterval(() => {
  load.max = Math.max(load.max, loadAverages()[0]);
}, 2_000);
loadSampler.unref();

const results: BenchMeasures = {};
const measureSeconds: BenchRun['measureSeconds'] = {};
const failed: BenchRun['notMeasured'] = {};
for (const name of selected) {
  progress(`${name}: starting`);
  const started = performance.now();
  try {
    await measures[name](results);
  } catch (error) {
    failed[name] = `the measure failed: ${error instanceof Error ? error.message : String(error)}`;
    progress(`${name}: failed: ${failed[name]}`);
  }
  measureSeconds[name] = (performance.now() - started) / 1000;
  progress(`${name}: done in ${measureSeconds[name]?.toFixed(0)} s`);
}
clearInterval(loadSampler);
load.end = loadAverages()[0];
load.max = Math.max(load.max, load.end);

const notMeasured: BenchRun['notMeasured'] = { ...failed };
for (const name of measureNames) {
  if (!selected.includes(name)) notMeasured[name] = 'left out of this run with --only.';
}
const finishedAt = new Date();
const run: BenchRun = {
  startedAt: startedAt.toISOString(),
  finishedAt: finishedAt.toISOString(),
  durationSeconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
  complete: !quick && only === undefined && Object.keys(failed).length === 0,
  machine: describeMachine(),
  load,
  measures: results,
  measureSeconds,
  notMeasured,
};
const report = renderReport(run);

if (quick || only !== undefined) {
  console.log(`\n${report}`);
} else {
  mkdirSync(join(repositoryRoot, 'bench', 'results'), { recursive: true });
  writeFileSync(join(repositoryRoot, 'bench', 'results', 'latest.json'), `${JSON.stringify(run, null, 2)}\n`);
  writeFileSync(join(repositoryRoot, 'BENCHMARKS.md'), report);
  progress('wrote BENCHMARKS.md and bench/results/latest.json');
}
process.exitCode = Object.keys(failed).length === 0 ? 0 : 1;

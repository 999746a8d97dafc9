import { describe, expect, it } from 'vitest';

import { summarize } from '../../../bench/lib/stats.js';
import { renderReport } from '../../../bench/report.js';
import type { BenchRun } from '../../../bench/run-result.js';
import type { TunnelPathResult } from '../../../bench/tunnels.js';

function path(
  id: TunnelPathResult['id'],
  mbPerSecond: number,
  reference?: TunnelPathResult['id'],
): TunnelPathResult {
  return {
    id,
    label: `path ${id}`,
    cipher: id === 'tcp' ? undefined : 'aes128-gcm@openssh.com',
    reference,
    runs: [{ mbPerSecond, seconds: 1, tunnelCpuSeconds: 1, bastionCpuSeconds: 0.5, endpointCpuSeconds: 0.2 }],
    mbPerSecond,
    tunnelCpuSecondsPerGiB: 1,
    bastionCpuSecondsPerGiB: 0.5,
    endpointCpuSecondsPerGiB: 0.2,
  };
}

const window = { total: summarize([10, 20, 30]), ferry: summarize([1, 2, 3]), lab: summarize([9, 18, 27]) };

const run: BenchRun = {
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:10:00.000Z',
  durationSeconds: 600,
  complete: false,
  machine: {
    cpuModel: 'Test CPU',
    cores: 2,
    aes: true,
    memoryGiB: 4,
    kernel: '6.1',
    node: 'v20.0.0',
    openssh: 'OpenSSH_9.2p1',
    redis: 'Redis 7',
  },
  load: { start: 0.5, end: 1, max: 2 },
  measures: {
    tunnels: {
      bytes: 2 ** 30,
      runsPerPath: 1,
      paths: [
        path('tcp', 4000),
        path('openssh-recipe', 400, 'openssh-recipe'),
        path('openssh-gcm', 700, 'openssh-gcm'),
        path('openssh-two-hop', 500, 'openssh-two-hop'),
        path('ferry-relay', 400, 'openssh-two-hop'),
        path('ferry-direct', 700, 'openssh-gcm'),
      ],
    },
    overhead: {
      variants: [
        {
          reuseConnections: true,
          migrations: 3,
          handshakesPerMigration: 0,
          toStart: window,
          toResult: { ...window, exitPoll: summarize([5, 6, 7]) },
          ferryBoth: summarize([100, 120, 200]),
          timings: [],
        },
      ],
    },
  },
  measureSeconds: { tunnels: 30, overhead: 60 },
  notMeasured: { handover: 'left out of this run with --only.' },
};

describe('renderReport', () => {
  const report = renderReport(run);
  const lines = report.split('\n');

  it('puts p50 and p95 on each measure row', () => {
    const row = lines.find((line) => line.startsWith("| ferry's own time, both windows, reused connections"));
    expect(row).toContain('| 120 ms | 192 ms | 3 |');
  });

  it('puts MB/s and ratio on each path row', () => {
    const row = lines.find((line) => line.startsWith('| path ferry-relay |'));
    expect(row).toContain('| 400 |');
    expect(row).toContain('| 0.80 |');
  });

  it('names the machine and the load', () => {
    expect(report).toContain('Test CPU, 2 cores with AES instructions');
    expect(report).toContain('2.00 at most during the run');
  });

  it('explains a missed target', () => {
    expect(lines.find((line) => line.startsWith('| `relay` vs the OpenSSH two-hop relay'))).toContain(
      '| no |',
    );
    expect(report).toContain('Missed by 20 %.');
  });

  it('marks measures left out', () => {
    expect(report).toContain('Not measured: left out of this run with --only.');
  });
});

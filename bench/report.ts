/** Renders a benchmark run as the Markdown of BENCHMARKS.md. */
import type { WindowFigures } from './overhead.js';
import type { BenchRun } from './run-result.js';
import { checkTargets } from './targets.js';
import type { Summary } from './lib/stats.js';

const ms = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(0)} ms` : 'n/a');
const fixed = (value: number, digits: number): string =>
  Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
const mb = (mib: number): string => `${((mib * 2 ** 20) / 1e6).toFixed(0)} MB`;

/** Formats the lowest and highest of `values`, such as "463-533". */
function rangeOf(values: number[]): string {
  if (values.length === 0) return 'n/a';
  return `${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)}`;
}

function row(cells: string[]): string {
  return `| ${cells.join(' | ')} |`;
}

function table(header: string[], rows: string[][]): string[] {
  return [row(header), row(header.map(() => '---')), ...rows.map(row)];
}

function percentileRow(name: string, summary: Summary): string[] {
  return [name, ms(summary.p50), ms(summary.p95), String(summary.count)];
}

export function renderReport(run: BenchRun): string {
  const lines: string[] = [];
  const { machine } = run;
  lines.push(
    '# Benchmarks',
    '',
    'Written by `npm run bench` (bench/run.ts); the raw figures are in bench/results/latest.json. ' +
      'Every path and variant below was measured in the same run on the same machine, so compare ' +
      'ratios within this page rather than with figures from other machines.',
    '',
    `- Run: ${run.startedAt} to ${run.finishedAt} (${(run.durationSeconds / 60).toFixed(1)} min)` +
      (run.complete ? '' : ', partial run (some measures smaller or left out)'),
    `- Machine: ${machine.cpuModel}, ${machine.cores} cores` +
      `${machine.aes === true ? ' with AES instructions' : machine.aes === false ? ' without AES instructions' : ''}, ` +
      `${machine.memoryGiB} GiB memory, Linux ${machine.kernel}`,
    `- Software: Node.js ${machine.node}, ${machine.openssh}, ${machine.redis}`,
    `- Load (1-minute average): ${fixed(run.load.start, 2)} at the start, ${fixed(run.load.end, 2)} at the end, ` +
      `${fixed(run.load.max, 2)} at most during the run`,
    '',
  );

  lines.push(...renderTunnels(run), ...renderOverhead(run), ...renderHandover(run));
  lines.push(...renderMany(run), ...renderMemory(run), ...renderTargets(run), ...renderMethod());
  return `${lines.join('\n')}\n`;
}

function notMeasured(run: BenchRun, name: keyof BenchRun['notMeasured']): string[] {
  const reason = run.notMeasured[name];
  return reason === undefined ? [] : [`Not measured: ${reason}`, ''];
}

function renderTunnels(run: BenchRun): string[] {
  const lines = ['## Tunnel throughput', ''];
  const tunnels = run.measures.tunnels;
  if (tunnels === undefined) return [...lines, ...notMeasured(run, 'tunnels')];
  const gib = tunnels.bytes / 2 ** 30;
  lines.push(
    `${gib >= 1 ? `${gib} GiB` : `${tunnels.bytes / 2 ** 20} MiB`} per stream into a byte-counting receiver, ` +
      `median of ${tunnels.runsPerPath} stream${tunnels.runsPerPath === 1 ? '' : 's'} per path. MB is 10^6 bytes. "Same path and cipher" compares ` +
      'with the OpenSSH path that carries the stream the same way with the same cipher. CPU counts every ' +
      'process that carries the stream (ssh, the sshd sessions of both hosts, and ferry); "on the bastion" ' +
      "is ferry's process or the two-hop relay's ssh clients. The sender and receiver are counted apart.",
    '',
  );
  const byId = new Map(tunnels.paths.map((path) => [path.id, path]));
  const recipe = byId.get('openssh-recipe');
  lines.push(
    ...table(
      [
        'Path',
        'Cipher',
        'MB/s',
        'Range of the runs',
        'Ratio to OpenSSH, same path and cipher',
        'Ratio to the hand-run recipe',
        'CPU s/GiB (tunnel)',
        'of which on the bastion',
        'CPU s/GiB (sender + receiver)',
      ],
      tunnels.paths.map((path) => {
        const reference = path.reference === undefined ? undefined : byId.get(path.reference);
        return [
          path.label,
          path.cipher ?? 'none',
          fixed(path.mbPerSecond, 0),
          rangeOf(path.runs.map((tunnelRun) => tunnelRun.mbPerSecond)),
          reference === undefined
            ? 'n/a'
            : reference.id === path.id
              ? '1.00 (reference)'
              : fixed(path.mbPerSecond / reference.mbPerSecond, 2),
          recipe === undefined ? 'n/a' : fixed(path.mbPerSecond / recipe.mbPerSecond, 2),
          fixed(path.tunnelCpuSecondsPerGiB, 2),
          fixed(path.bastionCpuSecondsPerGiB, 2),
          fixed(path.endpointCpuSecondsPerGiB, 2),
        ];
      }),
    ),
    '',
  );
  return lines;
}

function windowRows(label: string, figures: WindowFigures): string[][] {
  return [
    percentileRow(`${label}: total`, figures.total),
    percentileRow(`${label}: ferry's own time`, figures.ferry),
    percentileRow(`${label}: inside the lab's commands`, figures.lab),
  ];
}

function renderOverhead(run: BenchRun): string[] {
  const lines = ['## Orchestration overhead', ''];
  const overhead = run.measures.overhead;
  if (overhead === undefined) return [...lines, ...notMeasured(run, 'overhead')];
  lines.push(
    'Migrations of a lab VM with 1 byte of memory to move, one at a time. "Enqueue to migrate start" ends ' +
      'when the simulated xend receives `xm migrate`; "migrate end to result" starts when `xm migrate` ' +
      "returns and ends when the result is readable on the requester's result stream. \"Inside the lab's " +
      'commands" is the time during which at least one command ferry ran on a host was in progress (sshd ' +
      "session, shell, simulated xm); ferry's own time is the rest: queue, Redis, locks, SSH handshakes, " +
      "and ferry's wait for the detached `xm migrate` to exit, which checks on the host every 0.1 s. With " +
      'this little to move, `xm migrate` ends just after the first check, so that wait takes close to the full ' +
      '0.1 s here. For longer migrations it takes half of it on average.',
    '',
  );
  const rows: string[][] = [];
  for (const variant of overhead.variants) {
    const connections = variant.reuseConnections ? 'reused connections' : 'new connections per job';
    rows.push(
      ...windowRows(`Enqueue to migrate start, ${connections}`, variant.toStart),
      ...windowRows(`Migrate end to result, ${connections}`, variant.toResult),
      percentileRow(
        `Migrate end to result, ${connections}: waiting for the exit poll`,
        variant.toResult.exitPoll,
      ),
      percentileRow(`ferry's own time, both windows, ${connections}`, variant.ferryBoth),
    );
  }
  lines.push(...table(['Measure', 'p50', 'p95', 'Migrations'], rows), '');
  lines.push(
    overhead.variants
      .map(
        (variant) =>
          `SSH handshakes per migration with ${variant.reuseConnections ? 'reused' : 'new'} connections: ` +
          `${fixed(variant.handshakesPerMigration, 1)}.`,
      )
      .join(' '),
    '',
  );
  return lines;
}

function renderHandover(run: BenchRun): string[] {
  const lines = ['## Lock hand-over gap', ''];
  const handover = run.measures.handover;
  if (handover === undefined) return [...lines, ...notMeasured(run, 'handover')];
  lines.push(
    `${handover.migrations} migrations from one host to another queued at once, with the default host ` +
      'limit of one migration at a time, through one worker with a concurrency of 4.',
    '',
  );
  const rows = [
    handover.lockGapMs.count === 0
      ? [
          "Slot release to the next job's start (lock events)",
          'not measured: no lock events were written',
          '',
          '0',
        ]
      : percentileRow("Slot release to the next job's start (lock events)", handover.lockGapMs),
    percentileRow(
      'End of one transfer to the start of the next on the host (lab transfer record)',
      handover.transferGapMs,
    ),
  ];
  lines.push(...table(['Measure', 'p50', 'p95', 'Hand-overs'], rows), '');
  return lines;
}

function renderMany(run: BenchRun): string[] {
  const lines = ['## Many small migrations', ''];
  const many = run.measures.many;
  if (many === undefined) return [...lines, ...notMeasured(run, 'many')];
  const migrations = many.runs[0]?.migrations ?? 0;
  lines.push(
    `${migrations} lab migrations over ${many.hosts} hosts per run, through \`ferry worker\` processes with a ` +
      `concurrency of ${many.concurrencyPerWorker} each. Redis commands come from INFO commandstats over the ` +
      'run, all clients together, commands run inside Lua scripts included.',
    '',
  );
  lines.push(
    ...table(
      [
        'Workers',
        'Migrations/s',
        'Redis commands per migration',
        'of which Lua script calls',
        'Seconds',
        'Failed',
      ],
      many.runs.map((manyRun) => [
        `${manyRun.workers} worker${manyRun.workers === 1 ? '' : 's'}`,
        fixed(manyRun.migrationsPerSecond, 1),
        fixed(manyRun.redisCommandsPerMigration, 0),
        fixed(manyRun.scriptCallsPerMigration, 1),
        fixed(manyRun.seconds, 0),
        String(manyRun.failed),
      ]),
    ),
    '',
  );
  return lines;
}

function renderMemory(run: BenchRun): string[] {
  const lines = ['## Worker memory', ''];
  const memory = run.measures.memory;
  if (memory === undefined) return [...lines, ...notMeasured(run, 'memory')];
  lines.push(
    `One \`ferry worker\` process running ${memory.tunnels} relay-mode migrations at once, ` +
      `${memory.mibPerTunnel} MiB each, with no rate limit.`,
    '',
  );
  lines.push(
    ...table(
      ['Measure', 'Value'],
      [
        [`Peak RSS with ${memory.tunnels} tunnels (VmHWM, the worker's whole life)`, mb(memory.peakMiB)],
        ['Highest RSS sampled every 0.1 s while the tunnels ran', mb(memory.peakSampledMiB)],
        ['RSS of the idle worker before the first job', mb(memory.baselineMiB)],
        [
          'Highest RSS of the second half of the run minus that of the first half',
          mb(memory.secondHalfGrowthMiB),
        ],
        ['Transfers running at the same time (most)', String(memory.concurrentTransfers)],
        ['Throughput of all tunnels together', `${fixed(memory.aggregateMBPerSecond, 0)} MB/s`],
      ],
    ),
    '',
  );
  return lines;
}

function renderTargets(run: BenchRun): string[] {
  const checks = checkTargets(run);
  const lines = ['## Targets', ''];
  if (checks.length === 0) return [...lines, 'No target was measured in this run.', ''];
  lines.push(
    ...table(
      ['Target', 'Goal', 'Measured', 'Met'],
      checks.map((check) => [check.name, check.goal, check.measured, metText(check.met)]),
    ),
    '',
  );
  for (const check of checks) {
    if (check.note !== undefined) lines.push(`- ${check.name}: ${check.note}`);
  }
  lines.push('');
  return lines;
}

function metText(met: boolean | undefined): string {
  if (met === undefined) return 'see note';
  return met ? 'yes' : 'no';
}

function renderMethod(): string[] {
  return [
    '## How to run',
    '',
    "`npm run bench` after the README's setup. Every stream and every process stays on loopback. The " +
      'simulated Xen hosts, their sshds and Redis come from the lab (src/lab). `npx tsx bench/run.ts --quick` ' +
      'runs every measure at a small size and prints the tables without touching this page.',
    '',
  ];
}

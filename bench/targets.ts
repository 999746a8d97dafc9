/**
 * The targets the benchmarks check, each with the measured figure, whether it is met, and
 * for a missed one by how much, why, and what would close it.
 */
import type { BenchRun } from './run-result.js';

export interface TargetCheck {
  name: string;
  /** The target as a sentence fragment, e.g. "at least 1.25 x the hand-run recipe". */
  goal: string;
  /** The measured figure, formatted. */
  measured: string;
  /** undefined when the figure was not measured in this run. */
  met: boolean | undefined;
  /** For a missed target: the size of the miss, the reason, and what would close it. */
  note?: string;
}

const mbPerSecond = (value: number): string => `${value.toFixed(0)} MB/s`;

export function checkTargets(run: BenchRun): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const tunnels = run.measures.tunnels;
  const path = (id: string) => tunnels?.paths.find((candidate) => candidate.id === id);

  const relay = path('ferry-relay');
  const twoHop = path('openssh-two-hop');
  if (relay !== undefined && twoHop !== undefined) {
    const ratio = relay.mbPerSecond / twoHop.mbPerSecond;
    const met = ratio >= 1;
    checks.push({
      name: '`relay` vs the OpenSSH two-hop relay, same cipher',
      goal: 'ratio at least 1.00',
      measured: `${ratio.toFixed(2)} (${mbPerSecond(relay.mbPerSecond)} vs ${mbPerSecond(twoHop.mbPerSecond)})`,
      met,
      ...(met
        ? {}
        : {
            note:
              `Missed by ${((1 - ratio) * 100).toFixed(0)} %. Every stage of these paths is CPU-bound. ferry's ` +
              'bastion is one Node.js thread that decrypts the source hop and re-encrypts for the target hop in ' +
              "turn, with fresh buffers for every 32 KiB packet (ssh2). OpenSSH's relay runs the two hops in two " +
              `processes, which two cores run at once. Measured here: ${relay.bastionCpuSecondsPerGiB.toFixed(1)} ` +
              `CPU s/GiB on the bastion against ${twoHop.bastionCpuSecondsPerGiB.toFixed(1)}, and ` +
              `${relay.tunnelCpuSecondsPerGiB.toFixed(1)} against ${twoHop.tunnelCpuSecondsPerGiB.toFixed(1)} for ` +
              'the whole path. On loopback, where a TCP segment holds 64 KiB, ferry also pays for turning ' +
              "Nagle's algorithm off (for short request latency): each SSH packet leaves as a segment of its own, " +
              'which cost about 10 % of relay throughput in a side-by-side run on this machine (an estimate). On a ' +
              'network whose segments hold about 1.4 KiB that cost disappears. What would close the rest: running ' +
              'the connection of one hop in a worker thread or a process of its own, so that the two hops run in ' +
              'parallel, or OpenSSH for the bastion hops.',
          }),
    });
  }

  const direct = path('ferry-direct');
  const recipe = path('openssh-recipe');
  if (direct !== undefined && recipe !== undefined) {
    const ratio = direct.mbPerSecond / recipe.mbPerSecond;
    const met = ratio >= 1.25;
    checks.push({
      name: '`direct` vs the hand-run recipe (`ssh -L`, default cipher)',
      goal: 'ratio at least 1.25',
      measured: `${ratio.toFixed(2)} (${mbPerSecond(direct.mbPerSecond)} with ${direct.cipher ?? '?'} vs ${mbPerSecond(recipe.mbPerSecond)} with ${recipe.cipher ?? '?'})`,
      met,
      ...(met
        ? {}
        : {
            note:
              `Missed by ${((1.25 - ratio) * 100).toFixed(0)} percentage points. Both paths run the same OpenSSH ` +
              'programs, so the difference comes from the cipher alone, and a machine busy with other work narrows it.',
          }),
    });
  }
  if (relay !== undefined && recipe !== undefined) {
    const ratio = relay.mbPerSecond / recipe.mbPerSecond;
    checks.push({
      name: '`relay` vs the one-hop hand-run recipe',
      goal: 'deficit as small as it can be made',
      measured: `${ratio.toFixed(2)} (${mbPerSecond(relay.mbPerSecond)} vs ${mbPerSecond(recipe.mbPerSecond)})`,
      met: undefined,
      note:
        'A relay carries the stream over two SSH connections, so it encrypts and decrypts twice where the ' +
        'recipe does once; the cipher choice (AES-GCM) is what ferry can make cheaper, and it does.',
    });
  }

  const reuse = run.measures.overhead?.variants.find((variant) => variant.reuseConnections);
  if (reuse !== undefined) {
    const p50 = reuse.ferryBoth.p50;
    const met = p50 < 150;
    checks.push({
      name: "ferry's own overhead, reused connections (both windows)",
      goal: 'p50 under 150 ms',
      measured: `p50 ${p50.toFixed(0)} ms, p95 ${reuse.ferryBoth.p95.toFixed(0)} ms`,
      met,
      ...(met
        ? {}
        : {
            note:
              `Missed by ${(p50 - 150).toFixed(0)} ms. Most of it (p50 ${reuse.toResult.exitPoll.p50.toFixed(0)} ms) ` +
              "is ferry's wait for `xm migrate` to exit: the wait runs on the host and checks every 0.1 s. What " +
              'would close it: a shorter check interval, or a wait that blocks until the detached command writes ' +
              'its exit status (such as a FIFO the wrapper writes at exit) instead of polling.',
          }),
    });
  }

  const memory = run.measures.memory;
  if (memory !== undefined) {
    const peakMB = (memory.peakMiB * 2 ** 20) / 1e6;
    const idleMB = (memory.baselineMiB * 2 ** 20) / 1e6;
    const growthMB = (memory.secondHalfGrowthMiB * 2 ** 20) / 1e6;
    // Flat: the second half adds less than a tenth of what the tunnels added in all.
    const flat = growthMB < 0.1 * (peakMB - idleMB);
    const met = peakMB < 200;
    checks.push({
      name: `peak RSS of a worker with ${memory.tunnels} tunnels`,
      goal: 'under 200 MB',
      measured: `${peakMB.toFixed(0)} MB (idle ${idleMB.toFixed(0)} MB)`,
      met,
      ...(met
        ? {}
        : {
            note:
              `Missed by ${(peakMB - 200).toFixed(0)} MB. The idle worker alone takes ${idleMB.toFixed(0)} MB: ` +
              'Node.js with the libraries ferry loads, and tsx, which compiles the TypeScript sources when the ' +
              'worker starts. Each tunnel adds about ' +
              `${((peakMB - idleMB) / memory.tunnels).toFixed(1)} MB, and the second half of the run peaked ` +
              `${growthMB.toFixed(0)} MB above the first, ${flat ? 'so memory does not grow' : 'so memory still grows'} ` +
              'with the data moved. ssh2 gives every channel a fixed 2 MiB receive window and 2 MiB stream ' +
              'buffers and has no setting for them, and the relay lets them fill before it pauses the source. ' +
              'What would close it: workers that run compiled JavaScript instead of tsx (an esbuild bundle of ' +
              'the worker started about 17 MB smaller on this machine), and relay channels that stop taking ' +
              'data sooner, which needs a change in ssh2 or a relay that manages the channel window itself.',
          }),
    });
  }

  const elapsedMinutes = run.durationSeconds / 60;
  if (run.complete) {
    checks.push({
      name: '`npm run bench` on this machine',
      goal: 'within 15 minutes',
      measured: `${elapsedMinutes.toFixed(1)} min`,
      met: elapsedMinutes <= 15,
    });
  }
  return checks;
}

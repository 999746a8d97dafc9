/** A description of the machine a benchmark ran on, for the report. */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpus, loadavg, release, totalmem } from 'node:os';

import { localCpuHasAes } from '../../src/ssh/ciphers.js';

export interface Machine {
  cpuModel: string;
  cores: number;
  aes: boolean | undefined;
  memoryGiB: number;
  kernel: string;
  node: string;
  openssh: string;
  redis: string;
}

/** Load averages over 1, 5 and 15 minutes, as `uptime` prints them. */
export function loadAverages(): [number, number, number] {
  const [one = 0, five = 0, fifteen = 0] = loadavg();
  return [one, five, fifteen];
}

function versionOf(command: string, args: string[]): string {
  const output = spawnSync(command, args, { encoding: 'utf8' });
  return `${output.stdout ?? ''}${output.stderr ?? ''}`.trim().split('\n')[0] ?? 'unknown';
}

export function describeMachine(): Machine {
  let redis = 'unknown';
  try {
    redis = execFileSync('/usr/bin/redis-server', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    // The report then shows 'unknown'.
  }
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    aes: localCpuHasAes(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    openssh: versionOf('/usr/bin/ssh', ['-V']),
    redis,
  };
}

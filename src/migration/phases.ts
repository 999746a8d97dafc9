import { FerryError } from '../errors.js';
import type { MigrationPhase } from '../types.js';

/** Per-phase time limits of one attempt, in milliseconds. */
export interface PhaseTimeouts {
  connectMs: number;
  preflightMs: number;
  /** Time allowed for the hypervisor's migrate command. */
  migrateMs: number;
  verifyMs: number;
}

const mebibytesPerGibibyte = 1024;

/**
 * Computes the timeouts of an attempt. The migrate timeout scales with the VM's memory, 800 s
 * per GiB by default (the completion timeout OpenStack Nova and KubeVirt use), and is never
 * below one minute.
 */
export function phaseTimeouts(
  requested: Partial<PhaseTimeouts> | undefined,
  memoryMiB: number | undefined,
  migrateMsPerGiB = 800_000,
): PhaseTimeouts {
  const scaled = Math.ceil(((memoryMiB ?? 0) / mebibytesPerGibibyte) * migrateMsPerGiB);
  return {
    connectMs: requested?.connectMs ?? 20_000,
    preflightMs: requested?.preflightMs ?? 60_000,
    migrateMs: requested?.migrateMs ?? Math.max(60_000, scaled),
    verifyMs: requested?.verifyMs ?? 30_000,
  };
}

/** Rejects with PHASE_TIMEOUT when `work` has not settled within `timeoutMs`. */
export async function withTimeout<T>(phase: MigrationPhase, timeoutMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(
        new FerryError('PHASE_TIMEOUT', `The ${phase} phase timed out after ${timeoutMs} ms.`, {
          context: { phase },
        }),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

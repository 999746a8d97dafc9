import type { HostShell, HypervisorDriver, VmObservation } from '../drivers/index.js';
import { FerryError } from '../errors.js';
import type { ObservedPlacement } from '../types.js';

/**
 * Reconciliation: deciding what to do from where the VM is observed to be on both hosts,
 * never from the job record. It runs before every attempt and after every failure, because
 * BullMQ runs a job at least once: a retried or taken-over job may find its VM already moved,
 * still moving, or somewhere it cannot explain.
 */

/** State of both hosts at one moment. */
export interface Observation {
  source: VmObservation;
  target: VmObservation;
  /** True while a migrate command this job started still runs on the source. */
  commandRunning: boolean;
  placements: ObservedPlacement[];
}

export type Decision =
  /** The VM runs on the source only: migrating is safe. */
  | { kind: 'migrate' }
  /** The VM runs on the target only: the job is done without migrating (again). */
  | { kind: 'done' }
  /** A migration of the VM is in flight: wait for it to end, never start a second one. */
  | { kind: 'wait' }
  /** Anything else: a person must look. */
  | { kind: 'attention'; reason: string }
  /** The request cannot be carried out as it is (no such VM, VM not running). */
  | { kind: 'reject'; error: FerryError };

function toPlacement(observation: VmObservation): ObservedPlacement {
  return {
    host: observation.host,
    state: observation.state,
    ...(observation.detail === undefined ? {} : { detail: observation.detail }),
  };
}

export async function observe(
  driver: HypervisorDriver,
  source: HostShell,
  target: HostShell,
  vm: string,
  jobId: string,
): Promise<Observation> {
  const [onSource, onTarget, commandRunning] = await Promise.all([
    driver.locate(source, vm),
    driver.locate(target, vm),
    driver.migrationRunning?.(source, jobId) ?? Promise.resolve(false),
  ]);
  const placements = [toPlacement(onSource), toPlacement(onTarget)];
  if (commandRunning) {
    placements.push({ host: source.host.name, state: 'migrating', detail: 'migrate command running' });
  }
  return { source: onSource, target: onTarget, commandRunning, placements };
}

/**
 * Decides from an observation. `migrateStartedBefore` is true when an earlier attempt of this
 * job reached the migrate step: only then is a VM found on neither host, or stopped on the
 * source, something ferry may have caused rather than a bad request.
 */
export function decide(observation: Observation, vm: string, migrateStartedBefore: boolean): Decision {
  const { source, target } = observation;
  const where = `${source.host}: ${source.state}, ${target.host}: ${target.state}`;

  if (observation.commandRunning || source.state === 'migrating' || target.state === 'paused') {
    return { kind: 'wait' };
  }
  if (target.state === 'running' && source.state === 'absent') return { kind: 'done' };
  if (source.state === 'running' && target.state === 'absent') return { kind: 'migrate' };

  if (!migrateStartedBefore && target.state === 'absent') {
    if (source.state === 'absent') {
      return {
        kind: 'reject',
        error: new FerryError('VM_NOT_FOUND', `VM '${vm}' does not exist on ${source.host}.`, {
          context: { vm, host: source.host },
        }),
      };
    }
    return {
      kind: 'reject',
      error: new FerryError(
        'VM_NOT_RUNNING',
        `VM '${vm}' is ${source.state} on ${source.host}; only a running VM can be live-migrated.`,
        { context: { vm, host: source.host } },
      ),
    };
  }
  if (source.state === 'running' && target.state === 'running') {
    return { kind: 'attention', reason: `VM '${vm}' runs on both hosts (${where}).` };
  }
  if (source.state === 'absent' && target.state === 'absent') {
    return {
      kind: 'attention',
      reason: `VM '${vm}' is on neither host after a migration was started (${where}).`,
    };
  }
  return { kind: 'attention', reason: `VM '${vm}' is not running where it should (${where}).` };
}

/**
 * Observes both hosts until no migration of the VM is in flight, then decides. Waits at most
 * `timeoutMs`; a migration still in flight after that needs a person.
 */
export async function reconcile(
  driver: HypervisorDriver,
  source: HostShell,
  target: HostShell,
  options: {
    vm: string;
    jobId: string;
    migrateStartedBefore: boolean;
    timeoutMs: number;
    signal?: AbortSignal;
  },
): Promise<{ decision: Decision; observation: Observation }> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const observation = await observe(driver, source, target, options.vm, options.jobId);
    const decision = decide(observation, options.vm, options.migrateStartedBefore);
    if (decision.kind !== 'wait') return { decision, observation };
    if (Date.now() > deadline) {
      return {
        decision: {
          kind: 'attention',
          reason: `A migration of VM '${options.vm}' was still in flight after ${options.timeoutMs} ms.`,
        },
        observation,
      };
    }
    options.signal?.throwIfAborted();
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** `ferry locks`: show who holds and who waits for each host's migration slots. */
import type { Command } from 'commander';

import { describeResource, formatDuration } from '../locks/describe.js';
import {
  readLockSnapshot,
  type LockJobView,
  type LockSnapshot,
  type SlotPoolView,
} from '../locks/snapshot.js';
import { exitCodes } from './exit.js';
import { printable } from './format.js';
import { resolveSettings, withQueue, type GlobalOptions } from './settings.js';

interface LocksOptions extends GlobalOptions {
  json?: boolean;
}

function describePool(pool: SlotPoolView): string {
  const limit = pool.limits.join(' or ');
  const label = pool.direction === 'both' ? 'slots' : `${pool.direction} slots`;
  return `${label} ${pool.inUse} of ${limit} in use`;
}

function describeJob(job: LockJobView, now: number, holding: boolean): string {
  const route = `${printable(job.vm)} ${printable(job.source)} -> ${printable(job.target)}`;
  const bastion = job.bastion === '' ? '' : `, bastion ${printable(job.bastion)}`;
  if (holding) {
    const heldMs = now - (job.grantedAt ?? now);
    const waited = job.grantedAt === undefined ? '' : `, waited ${formatDuration(job.grantedAt - job.since)}`;
    return `  holding  job ${printable(job.jobId)}  ${route}  for ${formatDuration(heldMs)}${waited}${bastion}`;
  }
  const blocked =
    job.blocked.length === 0 ? '' : `, blocked by ${job.blocked.map(describeResource).join(', ')}`;
  const reserving = job.reserving ? ', reserving its slots' : '';
  return `  waiting  job ${printable(job.jobId)}  ${route}  for ${formatDuration(now - job.since)}${blocked}${reserving}${bastion}`;
}

/** Formats a lock snapshot as the lines of `ferry locks`. */
export function describeLocks(snapshot: LockSnapshot): string[] {
  if (snapshot.hosts.length === 0) return ['No migration holds or waits for a host slot.'];
  const lines: string[] = [];
  for (const host of snapshot.hosts) {
    lines.push(`${printable(host.host)}: ${host.pools.map(describePool).join(', ')}`);
    for (const job of host.holders) lines.push(describeJob(job, snapshot.now, true));
    for (const job of host.waiting) lines.push(describeJob(job, snapshot.now, false));
  }
  const global = snapshot.global;
  if (global !== undefined) {
    lines.push(`global cap: ${global.holders.length} of ${global.limits.join(' or ')} in use`);
  }
  return lines;
}

async function locks(options: LocksOptions): Promise<number> {
  const snapshot = await withQueue(resolveSettings(options), (queue) =>
    readLockSnapshot(queue.connection, queue.prefix),
  );
  if (options.json === true) console.log(JSON.stringify(snapshot, null, 2));
  else console.log(describeLocks(snapshot).join('\n'));
  return exitCodes.ok;
}

export function addLocksCommand(program: Command): void {
  program
    .command('locks')
    .description("show each host's migration slots: the jobs holding them and the jobs waiting, oldest first")
    .option('--json', 'print the snapshot as JSON (times are Redis times in milliseconds)')
    .addHelpText(
      'after',
      '\nA waiting job that is "reserving its slots" has waited past the ageing threshold: no newer\n' +
        'job takes a slot it needs. Exits 0, or 5 when Redis is unavailable.',
    )
    .action(async (_options: LocksOptions, command: Command) => {
      process.exitCode = await locks(command.optsWithGlobals<LocksOptions>());
    });
}

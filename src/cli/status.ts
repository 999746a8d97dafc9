/** `ferry status ID`: show the state, progress and result of a migration job. */
import type { Command } from 'commander';

import { getMigrationStatus } from '../jobs/producer.js';
import { exitCodes } from './exit.js';
import { describeStatus } from './format.js';
import { resolveSettings, withQueue, type GlobalOptions } from './settings.js';

interface StatusOptions extends GlobalOptions {
  json?: boolean;
}

async function status(jobId: string, options: StatusOptions): Promise<number> {
  const report = await withQueue(resolveSettings(options), (queue) => getMigrationStatus(queue, jobId));
  if (options.json === true) console.log(JSON.stringify(report, null, 2));
  else console.log(describeStatus(report).join('\n'));
  return exitCodes.ok;
}

export function addStatusCommand(program: Command): void {
  program
    .command('status')
    .description('show the state, progress and result of a migration job')
    .argument('<id>', 'job id that `ferry migrate` printed')
    .option('--json', 'print the status report as JSON')
    .addHelpText(
      'after',
      '\nStates: queued, running, retrying, then one of completed, failed, cancelled, needs-attention.\nExits 0 when the job was found, 2 for an unknown id, 5 when Redis is unavailable.',
    )
    .action(async (jobId: string, _options: StatusOptions, command: Command) => {
      process.exitCode = await status(jobId, command.optsWithGlobals<StatusOptions>());
    });
}

/** `ferry cancel ID`: cancel a waiting, postponed or running migration job. */
import { userInfo } from 'node:os';

import type { Command } from 'commander';

import { cancelMigration } from '../jobs/cancel.js';
import { exitCodes } from './exit.js';
import { resolveSettings, withQueue, type GlobalOptions } from './settings.js';

interface CancelOptions extends GlobalOptions {
  requester?: string;
}

async function cancel(jobId: string, options: CancelOptions): Promise<number> {
  const requestedBy = options.requester ?? process.env.FERRY_REQUESTER ?? userInfo().username;
  const { outcome, status } = await withQueue(resolveSettings(options), (queue) =>
    cancelMigration(queue, jobId, requestedBy),
  );
  if (outcome === 'cancelled') console.log('cancelled');
  else if (outcome === 'cancelling') {
    console.log(
      'cancelling: the worker aborts the migration and reports where the VM is; see `ferry status`',
    );
  } else console.log(`already ended: ${status ?? 'unknown'}`);
  return exitCodes.ok;
}

export function addCancelCommand(program: Command): void {
  program
    .command('cancel')
    .description('cancel a migration job: removes it if not started, otherwise tells its worker to abort')
    .argument('<id>', 'job id that `ferry migrate` printed')
    .option(
      '--requester <id>',
      'who cancels, recorded in the result (default: $FERRY_REQUESTER, then the Unix user)',
    )
    .action(async (jobId: string, _options: CancelOptions, command: Command) => {
      process.exitCode = await cancel(jobId, command.optsWithGlobals<CancelOptions>());
    });
}

/** `ferry migrate VM --from A --to B`: queue a migration and, with --wait, follow it to its end. */
import { Option, type Command } from 'commander';

import { enqueueMigration, isFinalState, waitForResult } from '../jobs/producer.js';
import { defaultAttempts, maxAttempts, validateRequest } from '../jobs/request.js';
import { tunnelModes } from '../types.js';
import { exitCodeForState, exitCodes, exitCodesHelp } from './exit.js';
import { describeProgress } from './format.js';
import {
  loadCliInventory,
  resolveRequester,
  resolveSettings,
  wholeNumber,
  withQueue,
  type GlobalOptions,
} from './settings.js';

interface MigrateOptions extends GlobalOptions {
  from: string;
  to: string;
  reason?: string;
  ticket?: string;
  requester?: string;
  tunnel: string;
  attempts: number;
  wait?: boolean;
  timeout?: number;
  json?: boolean;
}

/** Longest --timeout accepted: 7 days, in seconds. */
const maxWaitSeconds = 7 * 24 * 60 * 60;

async function migrate(vm: string, options: MigrateOptions): Promise<number> {
  const settings = resolveSettings(options);
  const inventory = loadCliInventory(settings);
  const input = {
    vm,
    source: options.from,
    target: options.to,
    requester: resolveRequester(options.requester),
    ...(options.reason === undefined ? {} : { reason: options.reason }),
    ...(options.ticket === undefined ? {} : { ticket: options.ticket }),
    options: { tunnel: options.tunnel, attempts: options.attempts },
  };
  // Validating before Redis is opened reports a bad request as such even when Redis is down.
  validateRequest(input, inventory);

  return withQueue(settings, async (queue) => {
    const { jobId } = await enqueueMigration(queue, inventory, input);
    if (options.wait !== true) {
      console.log(options.json === true ? JSON.stringify({ jobId }) : jobId);
      return exitCodes.ok;
    }

    console.error(`ferry: queued job ${jobId}`);
    const report = await waitForResult(queue, jobId, {
      ...(options.timeout === undefined ? {} : { timeoutMs: options.timeout * 1000 }),
      onProgress: (update) => console.error(`ferry: ${describeProgress(update)}`),
    });
    console.log(options.json === true ? JSON.stringify(report, null, 2) : report.state);
    const error = report.result?.error;
    if (error !== undefined && report.state !== 'completed') {
      console.error(`ferry: ${error.code}: ${error.message}`);
    }
    const observed = report.result?.observed;
    if (report.state === 'needs-attention' && observed !== undefined) {
      console.error(`ferry: observed ${observed.map((seen) => `${seen.host}: ${seen.state}`).join(', ')}`);
    }
    if (!isFinalState(report.state)) {
      console.error(
        `ferry: job ${jobId} had not ended after ${options.timeout} s and keeps going; check it with: ferry status ${jobId}`,
      );
    }
    return exitCodeForState(report.state);
  });
}

export function addMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('queue a live migration of a VM from one inventory host to another')
    .argument('<vm>', 'name of the VM as the source hypervisor lists it')
    .requiredOption('--from <host>', 'inventory host that runs the VM now')
    .requiredOption('--to <host>', 'inventory host the VM moves to')
    .option('--reason <text>', 'why the VM moves (give --reason, --ticket or both)')
    .option('--ticket <ref>', 'change ticket reference')
    .option(
      '--requester <id>',
      'who asks and reads the result (default: $FERRY_REQUESTER, then your Unix user name)',
    )
    .addOption(
      new Option('--tunnel <mode>', 'how the migration stream reaches the target')
        .choices(tunnelModes)
        .default('relay'),
    )
    .option(
      '--attempts <n>',
      `attempts before the job fails for good, 1 to ${maxAttempts}`,
      wholeNumber(maxAttempts),
      defaultAttempts,
    )
    .option(
      '--wait',
      'wait until the migration ends: progress lines and the job id go to stderr, the final status to stdout',
    )
    .option(
      '--timeout <seconds>',
      'with --wait, stop waiting after this many seconds (the job keeps going)',
      wholeNumber(maxWaitSeconds),
    )
    .option('--json', 'print JSON on stdout: {"jobId"}, or with --wait the final status report')
    .addHelpText('after', exitCodesHelp)
    .action(async (vm: string, _options: MigrateOptions, command: Command) => {
      process.exitCode = await migrate(vm, command.optsWithGlobals<MigrateOptions>());
    });
}

/** The `ferry` command line: global options and one subcommand per file. */
import { Command } from 'commander';

import { addApiCommand } from './api.js';
import { addCancelCommand } from './cancel.js';
import { exitCodesHelp } from './exit.js';
import { addLocksCommand } from './locks.js';
import { addMigrateCommand } from './migrate.js';
import { addResultsCommand } from './results.js';
import { addStatusCommand } from './status.js';
import { addWorkerCommand } from './worker.js';

export function createProgram(): Command {
  const program = new Command('ferry')
    .description('Queue live VM migrations over SSH tunnels, follow them and read their results.')
    .option(
      '--redis <url>',
      'Redis URL (default: $FERRY_REDIS_URL, then $REDIS_URL, then redis://127.0.0.1:6379)',
    )
    .option('--inventory <path>', 'inventory YAML file (default: $FERRY_INVENTORY, then ./inventory.yaml)')
    .option(
      '--prefix <name>',
      'Redis key prefix of the queue and the results (default: $FERRY_PREFIX, then ferry)',
    )
    // Commander throws instead of exiting, so that main.ts maps usage errors to exit code 2.
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`ferry: ${text.replace(/^error: /, '')}`) })
    .addHelpText('after', exitCodesHelp);

  // Subcommands are added after the settings above, which they inherit.
  addMigrateCommand(program);
  addStatusCommand(program);
  addCancelCommand(program);
  addResultsCommand(program);
  addLocksCommand(program);
  addWorkerCommand(program);
  addApiCommand(program);
  return program;
}

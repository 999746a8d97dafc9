/** `ferry results`: print the requester's unread results, then mark them read. */
import type { Command } from 'commander';

import { exitCodes } from './exit.js';
import { describeResult } from './format.js';
import { resolveRequester, resolveSettings, wholeNumber, withQueue, type GlobalOptions } from './settings.js';

interface ResultsOptions extends GlobalOptions {
  requester?: string;
  count: number;
  json?: boolean;
}

const maxCount = 1000;

async function results(options: ResultsOptions): Promise<number> {
  const requester = resolveRequester(options.requester);
  return withQueue(resolveSettings(options), async (queue) => {
    const entries = await queue.results.readForRequester(requester, { count: options.count });
    if (options.json === true) {
      console.log(
        JSON.stringify(
          entries.map((entry) => entry.result),
          null,
          2,
        ),
      );
    } else if (entries.length === 0) {
      console.error(`ferry: no unread results for ${requester}`);
    } else {
      for (const entry of entries) console.log(describeResult(entry.result));
    }
    // Acknowledged only after printing: a run that dies before this shows them again next time.
    await queue.results.ack(
      requester,
      entries.map((entry) => entry.entryId),
    );
    return exitCodes.ok;
  });
}

export function addResultsCommand(program: Command): void {
  program
    .command('results')
    .description("print the requester's unread migration results, oldest first, and mark them read")
    .option('--requester <id>', 'whose results to read (default: $FERRY_REQUESTER, then your Unix user name)')
    .option('--count <n>', `at most this many results, 1 to ${maxCount}`, wholeNumber(maxCount), 100)
    .option('--json', 'print the results as a JSON array')
    .addHelpText('after', `\nResults are kept for 7 days. Exits 0 also when there is nothing to read.`)
    .action(async (_options: ResultsOptions, command: Command) => {
      process.exitCode = await results(command.optsWithGlobals<ResultsOptions>());
    });
}

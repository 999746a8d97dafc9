/**
 * Worker entry point for a bastion host, configured from the environment only:
 * FERRY_REDIS_URL (then REDIS_URL), FERRY_INVENTORY, FERRY_PREFIX, FERRY_CONCURRENCY,
 * FERRY_EXIT_WHEN_DRAINED, FERRY_BASTION and FERRY_LOG_LEVEL. Run it with `npx tsx workers/bastion.ts`.
 */
import { reportError } from '../src/cli/exit.js';
import { runWorkerUntilStopped, workerOptionsFrom } from '../src/cli/worker.js';

try {
  await runWorkerUntilStopped(workerOptionsFrom({}, {}));
} catch (error) {
  process.exitCode = reportError(error);
}

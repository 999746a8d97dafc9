/** Runs the `ferry` command line; bin/ferry.mjs loads this module. */
import { exitCodes, reportError } from './exit.js';
import { createProgram } from './program.js';

// A reader that stops early (`ferry --help | head`) closes the pipe; that is no error of ours.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(exitCodes.ok);
});

try {
  await createProgram().parseAsync(process.argv);
} catch (error) {
  process.exitCode = reportError(error);
}

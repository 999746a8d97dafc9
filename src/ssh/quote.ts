/**
 * Quoting for remote commands. sshd hands an exec request's command line to the login
 * account's shell, so every argument ferry sends passes through shellQuote and no command line
 * is ever assembled from unquoted text.
 *
 * NOTE: the quoting follows POSIX sh rules (sh, dash, bash, ksh, zsh). A login shell from the
 * csh family treats `!` and newlines inside single quotes differently; ferry assumes hosts give
 * the login account a POSIX shell.
 */

import { FerryError } from '../errors.js';

/** Characters that no POSIX shell treats specially anywhere in a word. */
const plainWord = /^[A-Za-z0-9_@%+:,./-]+$/;

/**
 * Quotes one argument for a POSIX shell. Plain words stay as they are, everything else goes
 * inside single quotes, where only `'` itself needs care: it becomes `'\''`. Throws
 * INVALID_REQUEST for a NUL character, which no shell argument can carry.
 */
export function shellQuote(arg: string): string {
  if (arg.includes('\0')) {
    const preview = JSON.stringify(arg.length > 60 ? `${arg.slice(0, 60)}...` : arg);
    throw new FerryError(
      'INVALID_REQUEST',
      `Invalid shell argument ${preview}: it contains a NUL character, which a remote command cannot carry.`,
      { context: { field: 'argv' } },
    );
  }
  if (plainWord.test(arg)) return arg;
  return `'${arg.replaceAll("'", "'\\''")}'`;
}

/** Builds a command line from argv, quoting every argument. Throws INVALID_REQUEST for an empty argv. */
export function shellCommand(argv: readonly string[]): string {
  if (argv.length === 0) {
    throw new FerryError(
      'INVALID_REQUEST',
      'Invalid remote command: argv is empty; pass the program and its arguments.',
      {
        context: { field: 'argv' },
      },
    );
  }
  return argv.map(shellQuote).join(' ');
}

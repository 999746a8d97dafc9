import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { isFerryError } from '../../../src/errors.js';
import { shellCommand, shellQuote } from '../../../src/ssh/quote.js';

/** Shells that may be a login account's shell; each one present on this machine is checked. */
const shells = ['/bin/sh', '/bin/dash', '/bin/bash', '/usr/bin/zsh'].filter((path) => existsSync(path));

/** Runs `printf %s <quoted>` in a real shell and returns exactly what it printed. */
function echoThrough(shell: string, arg: string): Buffer {
  return execFileSync(shell, ['-c', `printf %s ${shellQuote(arg)}`]);
}

const hostile = [
  '',
  ' ',
  'plain-word_1.2:3,4/5@6%7+8',
  "it's",
  "''",
  '"double" quotes',
  '$(touch /tmp/ferry-quote-pwned)',
  '`touch /tmp/ferry-quote-pwned`',
  '${HOME} $HOME $0 $$ $?',
  'a; rm -rf /tmp/ferry-quote-pwned',
  'a && b || c | d & e',
  'line one\nline two\n',
  '\r\t\x1b[31m\x07',
  '*.img ?x [ab] {a,b} ~root',
  '# not a comment',
  '!event !! history',
  'back\\slash\\',
  'mixed \'"$`\\ everything',
  '-n',
  '=leading-equals',
  'ünïcödé ✓ 日本',
];

describe('shellQuote', () => {
  it('leaves plain words unquoted', () => {
    expect(shellQuote('xm')).toBe('xm');
    expect(shellQuote('/usr/sbin/xm')).toBe('/usr/sbin/xm');
    expect(shellQuote('--port=8002')).toBe("'--port=8002'");
  });

  it('quotes the empty string', () => {
    expect(shellQuote('')).toBe("''");
  });

  it('escapes single quotes by closing and reopening', () => {
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });

  for (const shell of shells) {
    it(`round-trips hostile text through ${shell}`, () => {
      for (const arg of hostile) {
        expect(echoThrough(shell, arg).toString('utf8'), JSON.stringify(arg)).toBe(arg);
      }
      expect(existsSync('/tmp/ferry-quote-pwned')).toBe(false);
    });
  }

  it('rejects a NUL character', () => {
    let thrown: unknown;
    try {
      shellQuote('a\0b');
    } catch (error) {
      thrown = error;
    }
    expect(isFerryError(thrown, 'INVALID_REQUEST')).toBe(true);
    expect((thrown as Error).message).toContain('NUL');
  });
});

describe('shellCommand', () => {
  it('joins quoted arguments with spaces', () => {
    expect(shellCommand(['printf', '%s', "a b'c"])).toBe("printf %s 'a b'\\''c'");
  });

  it('keeps argument boundaries in a real shell', () => {
    const argv = ['sh', '-c', 'printf "[%s]" "$@"', 'name', 'one two', '', "th'ree", '$(x)', 'a\nb'];
    const output = execFileSync('/bin/sh', ['-c', shellCommand(argv)]).toString('utf8');
    expect(output).toBe("[one two][][th'ree][$(x)][a\nb]");
  });

  it('rejects an empty argv', () => {
    expect(() => shellCommand([])).toThrow(/argv is empty/);
  });

  it('rejects NUL in any argument', () => {
    expect(() => shellCommand(['echo', 'ok', 'bad\0'])).toThrow(/NUL/);
  });
});

import { FerryError } from '../errors.js';
import type { HostShell } from './driver.js';

/**
 * Runs a long hypervisor command detached from the SSH session that started it, keeping its
 * pid, exit status and output in a folder on the host. The command then survives the bastion
 * losing its connection, and a later attempt (on any bastion) can tell whether it still runs
 * and how it ended. The shell scripts below are constant text; every value reaches them as a
 * positional argument, quoted by the SSH layer.
 */

const startScript = [
  'dir=$1; shift',
  'mkdir -p -- "$dir" && cd -- "$dir" || exit 125',
  'rm -f -- exit exit.tmp pid stdout stderr',
  '(setsid "$@" >stdout 2>stderr </dev/null; echo $? >exit.tmp && mv exit.tmp exit) >/dev/null 2>&1 </dev/null &',
  'echo $! >pid',
  'echo $!',
].join('\n');

// Polls on the host itself, so a wait costs one SSH session, not one per poll. It checks every
// 0.1 s, which starts ten short `sleep` processes a second and delays the result by 50 ms on
// average.
// The exit file decides first: the ended command stays a zombie that `kill -0` still finds
// until init reaps it, which a minimal init (as in containers) does late or never.
const waitScript = [
  'cd -- "$1" 2>/dev/null || { echo "exit=none"; exit 0; }',
  'pid=$(cat pid 2>/dev/null) || { echo "exit=none"; exit 0; }',
  'while [ ! -f exit ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done',
  'if [ -f exit ]; then echo "exit=$(cat exit)"; else echo "exit=lost"; fi',
  'cat stderr 2>/dev/null',
].join('\n');

const inspectScript = [
  'cd -- "$1" 2>/dev/null || { echo none; exit 0; }',
  'pid=$(cat pid 2>/dev/null) || { echo none; exit 0; }',
  'if [ -f exit ]; then echo "exited $(cat exit)"',
  'elif kill -0 "$pid" 2>/dev/null; then echo running',
  'else echo lost; fi',
].join('\n');

/** End of a detached command: its exit code, or null when it vanished without one. */
export interface DetachedExit {
  code: number | null;
  stderr: string;
}

export type DetachedState = 'running' | 'exited' | 'lost' | 'none';

/** Starts `argv` detached in `dir` on the host and returns its pid. */
export async function startDetached(shell: HostShell, dir: string, argv: string[]): Promise<number> {
  const output = await shell.run(['sh', '-c', startScript, 'ferry-start', dir, ...argv], {
    timeoutMs: 30_000,
  });
  const pid = Number(output.stdout.trim());
  if (output.code !== 0 || !Number.isInteger(pid) || pid <= 0) {
    throw new FerryError(
      'COMMAND_FAILED',
      `Could not start '${argv[0] ?? ''}' detached in ${dir} on ${shell.host.name}: ${output.stderr.trim() || `exit code ${output.code}`}. Check that the host's workDir is writable by ${shell.host.user}.`,
      { context: { host: shell.host.name } },
    );
  }
  return pid;
}

/** Waits until the detached command in `dir` has ended and returns how it ended. */
export async function waitDetached(
  shell: HostShell,
  dir: string,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<DetachedExit> {
  const output = await shell.run(['sh', '-c', waitScript, 'ferry-wait', dir], options);
  const [first = '', ...rest] = output.stdout.split('\n');
  const value = first.replace(/^exit=/, '');
  const code = /^\d+$/.test(value) ? Number(value) : null;
  return { code, stderr: rest.join('\n').trim() };
}

/** Tells whether the detached command in `dir` still runs, has ended, or never started. */
export async function inspectDetached(shell: HostShell, dir: string): Promise<DetachedState> {
  const output = await shell.run(['sh', '-c', inspectScript, 'ferry-inspect', dir], { timeoutMs: 30_000 });
  const word = output.stdout.trim().split(' ')[0];
  if (word === 'running' || word === 'lost' || word === 'none') return word;
  return word === 'exited' ? 'exited' : 'none';
}

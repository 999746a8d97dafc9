/**
 * The shell side of direct tunnels: the wrapper that runs OpenSSH's ssh on the source host,
 * the check that it is gone, and the reading of ssh's -v output.
 */

import { FerryError, type ErrorCode } from '../errors.js';

/**
 * Runs `"$@"` (the ssh command) in the background, prints its pid, and kills it when the exec
 * channel's stdin reaches EOF. sshd closes that stdin whenever the channel ends, whether ferry
 * ended it, the connection dropped, or the bastion died, so ssh never outlives the channel.
 * The wrapper exits with ssh's status when ssh exits first.
 *
 * A non-interactive sh gives background jobs /dev/null as stdin, so the watcher reads the
 * channel's stdin through fd 3. It checks that the wrapper is still alive before killing, so
 * a pid that ssh left behind long ago is not signalled.
 */
export const wrapperScript = [
  'wrapper=$$',
  'exec 3<&0',
  '"$@" </dev/null 3<&- &',
  'ssh_pid=$!',
  'printf \'ferry-direct-pid %s\\n\' "$ssh_pid"',
  '{ cat <&3; kill -0 "$wrapper" && kill -TERM "$ssh_pid"; } >/dev/null 2>&1 &',
  'exec 3<&-',
  'wait "$ssh_pid"',
].join('\n');

/** Name the wrapper runs under ($0), so that it is recognisable in `ps` on the host. */
export const wrapperName = 'ferry-direct';

/**
 * Ends the process `$1` if it is still the ssh that carries forward `$2`: SIGTERM, SIGKILL
 * after 2 s, and prints `gone` or, after 4 s, `alive`. On Linux the process counts as alive
 * only while /proc/PID/cmdline contains the forward spec. That keeps a reused pid (or a
 * zombie) from being signalled. Elsewhere `kill -0` decides.
 * NOTE: `sleep 0.1` needs GNU coreutils or busybox sleep. Where sleep rejects fractions the
 * loop runs without pauses, so SIGKILL follows SIGTERM at once.
 */
export const reapScript = [
  'pid=$1 mark=$2 i=0',
  'alive() {',
  '  if [ -d /proc/self ]; then',
  '    [ -r "/proc/$pid/cmdline" ] && tr "\\000" " " <"/proc/$pid/cmdline" | grep -qF -e "$mark"',
  '  else',
  '    kill -0 "$pid" 2>/dev/null',
  '  fi',
  '}',
  'while alive; do',
  '  case $i in',
  '    0) kill -TERM "$pid" 2>/dev/null ;;',
  '    20) kill -KILL "$pid" 2>/dev/null ;;',
  '    40) echo alive; exit 1 ;;',
  '  esac',
  '  i=$((i + 1))',
  '  sleep 0.1',
  'done',
  'echo gone',
].join('\n');

/** The pid line the wrapper prints first on stdout. */
export const pidLine = /^ferry-direct-pid (\d+)$/m;

/**
 * OpenSSH -v prints `debug1: Local forwarding listening on 127.0.0.1 port 20001.` just BEFORE
 * it calls bind(), so on its own the line does not prove the port is bound. OpenSSH 9.2 prints
 * it and then `bind [127.0.0.1]:20001: Address already in use` when the port is taken.
 */
export const listeningLine = /Local forwarding listening on 127\.0\.0\.1 port (\d+)\./;

/**
 * ssh enters its session loop only after every local forward is set up; with
 * ExitOnForwardFailure=yes a failed one ends ssh before this line. Together with
 * listeningLine it marks the tunnel ready.
 */
export const sessionLine = /^debug1: Entering interactive session\./;

/**
 * The cipher OpenSSH -v reports for the client-to-server direction, as in
 * `debug1: kex: client->server cipher: aes128-gcm@openssh.com MAC: <implicit> compression: none`.
 */
export const cipherLine = /^debug1: kex: client->server cipher: (\S+) /;

/** A forwarded connection whose far end failed: `channel 2: open failed: connect failed: Connection refused`. */
export const openFailedLine = /channel \d+: open failed: (.*)$/;

/** Lines of ssh's stderr that are not debug output, kept for error messages. */
export class StderrLog {
  readonly #lines: string[] = [];
  #partial = '';

  constructor(readonly maxLines = 30) {}

  /** Splits a chunk into lines and passes each complete line to `onLine`. */
  add(chunk: string, onLine: (line: string) => void): void {
    const text = this.#partial + chunk;
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    for (const raw of lines) {
      const line = raw.replace(/\r$/, '');
      if (line !== '' && !/^debug\d: /.test(line)) {
        this.#lines.push(line);
        if (this.#lines.length > this.maxLines) this.#lines.shift();
      }
      onLine(line);
    }
  }

  /** Returns the kept lines, the most recent last. */
  text(): string {
    return [
      ...this.#lines,
      ...(this.#partial === '' || /^debug\d: /.test(this.#partial) ? [] : [this.#partial]),
    ].join('\n');
  }
}

/** The hop a direct tunnel's ssh runs on, for error messages and context. */
export interface DirectHop {
  sourceHost: string;
  targetAddress: string;
  targetSshPort: number;
  targetUser: string;
  knownHostsFile: string;
  identityFile: string;
}

/** Explains why the ssh of a direct tunnel exited before its forward was ready. */
export function classifySshExit(stderr: string, exitCode: number | null, hop: DirectHop): FerryError {
  const where = `${hop.targetAddress}:${hop.targetSshPort}`;
  const lead = `OpenSSH on '${hop.sourceHost}' could not open the direct tunnel to ${where}`;
  const context = {
    host: hop.sourceHost,
    phase: 'tunnel',
    hop: `${hop.sourceHost} -> ${where}`,
    exitCode,
    stderr,
  };
  const fail = (code: ErrorCode, message: string): FerryError =>
    new FerryError(code, `${lead}: ${message}`, { context });

  if (stderr.includes('REMOTE HOST IDENTIFICATION HAS CHANGED')) {
    return fail(
      'HOST_KEY_MISMATCH',
      `the target presented a host key that differs from the one in ${hop.knownHostsFile} on the source host. ` +
        'Confirm the new key on the target itself, then update that known_hosts file.',
    );
  }
  if (stderr.includes('Host key verification failed.')) {
    return fail(
      'HOST_KEY_UNKNOWN',
      `${hop.knownHostsFile} on the source host has no key for [${hop.targetAddress}]:${hop.targetSshPort} ` +
        '(or the login account there cannot read it). Add the target host key to it.',
    );
  }
  if (stderr.includes('Permission denied')) {
    return fail(
      'AUTH_FAILED',
      `the target rejected the key ${hop.identityFile} of the source host for user '${hop.targetUser}'. ` +
        `Add its public key to the target's authorized_keys, and check that the login account on the source can read the key.` +
        detailOf(stderr, /(Load key|Identity file|Warning: Identity file).*$/m),
    );
  }
  const connect = /ssh: connect to host .*$|ssh: Could not resolve hostname .*$/m.exec(stderr);
  if (connect !== null) return fail('SSH_CONNECT_FAILED', `${connect[0]}.`);
  if (exitCode === 126 || exitCode === 127) {
    return fail(
      'COMMAND_FAILED',
      `the ssh client could not be run (exit code ${exitCode}). ${lastLine(stderr)}`,
    );
  }
  return fail('TUNNEL_FAILED', `ssh exited with code ${exitCode ?? 'none'}. ${lastLine(stderr)}`);
}

function detailOf(stderr: string, pattern: RegExp): string {
  const match = pattern.exec(stderr);
  return match === null ? '' : ` (${match[0]})`;
}

function lastLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const line = lines[lines.length - 1] ?? '';
  return line === '' ? 'ssh printed nothing.' : `ssh printed: ${line}`;
}

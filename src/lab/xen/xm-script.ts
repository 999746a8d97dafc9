import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CONTROL_MAGIC } from './control.js';

/** Quotes a value for bash so that it is taken literally. */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Returns the bash source of a host's `xm`. It sends its arguments to the simulator's control
 * server through bash's /dev/tcp and copies the response to stdout, stderr and the exit code,
 * so each call costs one bash start and no Node start. It needs nothing but bash.
 */
export function renderXmScript(hostName: string, controlPort: number): string {
  return `#!/bin/bash
# xm of the ferry lab host ${hostName}: runs the command in the lab's simulated xend, which lives
# in the Node process that wrote this file, and prints its output. Rewritten at every lab start.
#
# Request: NUL-terminated fields ${CONTROL_MAGIC}, host, argument count, arguments.
# Response: "${CONTROL_MAGIC} <code> <stdout bytes> <stderr bytes>" on one line, then the bytes.
set -u
# Byte counts below are counted by read -N, which counts characters: the C locale makes them bytes.
export LC_ALL=C
host=${shellQuote(hostName)}
port=${controlPort}

if ! { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
  echo "Error: Unable to connect to xend: Connection refused. Is xend running?" >&2
  exit 1
fi

printf '${CONTROL_MAGIC}\\0%s\\0%s\\0' "$host" "$#" >&3
if (( $# > 0 )); then
  printf '%s\\0' "$@" >&3
fi

if ! IFS=' ' read -r magic code out_len err_len <&3 || [[ "$magic" != ${CONTROL_MAGIC} ]]; then
  echo "Error: the lab's xend closed the connection without an answer." >&2
  exit 1
fi
# Checked before any arithmetic, because bash arithmetic would evaluate other text.
if ! [[ "$code" =~ ^[0-9]+$ && "$out_len" =~ ^[0-9]+$ && "$err_len" =~ ^[0-9]+$ ]]; then
  echo "Error: the lab's xend sent an invalid response." >&2
  exit 1
fi

out=''
err=''
if (( out_len > 0 )); then IFS= read -r -N "$out_len" out <&3; fi
if (( err_len > 0 )); then IFS= read -r -N "$err_len" err <&3; fi
exec 3<&-

printf '%s' "$out"
printf '%s' "$err" >&2
exit "$code"
`;
}

/**
 * Writes the script to `path` with mode 0755, its folder with mode 0755, so that a non-root
 * sshd session can run it. The file is replaced in one rename, so a running xm never reads
 * half of it.
 */
export function writeXmScript(path: string, hostName: string, controlPort: number): void {
  const folder = dirname(path);
  mkdirSync(folder, { recursive: true });
  chmodSync(folder, 0o755);
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, renderXmScript(hostName, controlPort), { mode: 0o755 });
  chmodSync(temporary, 0o755);
  renameSync(temporary, path);
}

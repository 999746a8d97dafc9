import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Writes the stand-ins for `ip` and `ls` that a lab host's sessions run, so that ferry's
 * pre-flight checks of bridges and storage paths see the simulated host rather than the
 * machine the lab runs on. Both are plain bash reading two lists in the host's folder:
 * `bridges` (one bridge a line) and `storage` (one path a line; a path under a listed folder
 * exists too).
 */
export function writeHostTools(
  stateDir: string,
  bridges: string[],
  storagePaths: string[],
): { ip: string; ls: string } {
  const binDir = join(stateDir, 'bin');
  mkdirSync(binDir, { recursive: true, mode: 0o755 });
  writeFileSync(join(stateDir, 'bridges'), bridges.map((bridge) => `${bridge}\n`).join(''));
  writeFileSync(join(stateDir, 'storage'), storagePaths.map((path) => `${path}\n`).join(''));

  const ipPath = join(binDir, 'ip');
  writeFileSync(
    ipPath,
    `#!/bin/bash
# Lab stand-in for \`ip -o link show type bridge\`, listing the bridges of this simulated host.
if [ "$*" != "-o link show type bridge" ]; then
  echo "lab ip: only '-o link show type bridge' is simulated" >&2
  exit 2
fi
index=2
while IFS= read -r bridge; do
  [ -n "$bridge" ] || continue
  printf '%d: %s: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\\\\    link/ether 02:00:00:00:00:%02x brd ff:ff:ff:ff:ff:ff\\n' "$index" "$bridge" "$index"
  index=$((index + 1))
done < ${shellQuote(join(stateDir, 'bridges'))}
`,
  );
  chmodSync(ipPath, 0o755);

  const lsPath = join(binDir, 'ls');
  writeFileSync(
    lsPath,
    `#!/bin/bash
# Lab stand-in for \`ls -d -- PATH...\` against the storage paths of this simulated host.
if [ "$1" != "-d" ] || [ "$2" != "--" ]; then
  echo "lab ls: only 'ls -d -- PATH...' is simulated" >&2
  exit 2
fi
shift 2
status=0
for path in "$@"; do
  found=no
  while IFS= read -r known; do
    [ -n "$known" ] || continue
    if [ "$path" = "$known" ] || [[ "$path" == "\${known%/}/"* ]]; then found=yes; break; fi
  done < ${shellQuote(join(stateDir, 'storage'))}
  if [ "$found" = yes ]; then
    printf '%s\\n' "$path"
  else
    printf "ls: cannot access '%s': No such file or directory\\n" "$path" >&2
    status=2
  fi
done
exit $status
`,
  );
  chmodSync(lsPath, 0o755);
  return { ip: ipPath, ls: lsPath };
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

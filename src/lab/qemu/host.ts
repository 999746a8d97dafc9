/**
 * Real QEMU VMs on lab hosts. A QEMU lab host runs each VM as a QEMU process of the lab's login
 * account, with its QMP monitor socket and serial log in the host's state folder. Its start
 * script is what the qemu driver's incomingCommand runs through the host's sshd.
 *
 * VM definitions (memory, working set) live in one lab-wide folder, as a cluster keeps VM
 * configuration on shared storage: any host can start any defined VM, so source and target run
 * QEMU with the same arguments. Every QEMU carries FERRY_LAB_ID in its environment (from
 * sshd's SetEnv, or set here), so Lab.stop() ends it with the other session processes.
 */

import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

import { QmpClient } from '../../drivers/qemu/qmp.js';
import type { LabAccount } from '../account.js';
import { isAlive, killTree } from '../processes.js';
import { buildGuest } from './guest.js';

export const qemuBinary = '/usr/bin/qemu-system-x86_64';

/** One VM of the lab guest. */
export interface LabQemuVm {
  name: string;
  /** Guest RAM. Default 64 MiB. */
  memoryMiB?: number;
  /** Memory the guest rewrites for ever, which sets how fast it dirties pages. Default 4 MiB. */
  workingSetMiB?: number;
}

/** QEMU settings of a lab host; the host then uses the qemu driver. Defaults are the driver's. */
export interface LabQemuOptions {
  /** VMs started on this host when the lab starts. */
  vms?: LabQemuVm[];
  maxBandwidthMiBps?: number;
  downtimeLimitMs?: number;
  maxDowntimeLimitMs?: number;
  downtimeSteps?: number;
  passesPerDowntimeStep?: number;
  stallTimeoutMs?: number;
}

/** Files all QEMU hosts of one lab share: the guest kernel and the VM definitions. */
export interface LabQemuShared {
  dir: string;
  kernelPath: string;
  account: LabAccount;
  labId: string;
}

/** Builds the guest and creates the lab-wide VM definitions folder under `labDir`. */
export function prepareLabQemu(labDir: string, account: LabAccount, labId: string): LabQemuShared {
  const dir = join(labDir, 'qemu');
  mkdirSync(join(dir, 'vms'), { recursive: true, mode: 0o755 });
  return { dir, kernelPath: buildGuest(dir), account, labId };
}

const vmNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Returns the start script of a QEMU lab host: `qemu-vm VM MONITOR [incoming]`. */
function startScript(shared: LabQemuShared, stateDir: string): string {
  return `#!/bin/bash
# Lab stand-in for a KVM host's VM start script. Starts VM $1 from its lab-wide definition with
# its QMP monitor on $2; with "incoming" as $3, QEMU waits for a migration (-incoming defer).
# QEMU daemonizes, so the script returns once the VM's QEMU runs.
set -eu
vm=$1 monitor=$2 mode=\${3:-}
if ! [[ $vm =~ ${vmNamePattern.source} ]]; then
  echo "qemu-vm: invalid VM name: $vm" >&2
  exit 2
fi
definition=${shellQuote(join(shared.dir, 'vms'))}/$vm
if [ ! -f "$definition" ]; then
  echo "qemu-vm: VM $vm is not defined in the lab" >&2
  exit 2
fi
read -r memory_mib working_set_mib < "$definition"
state=${shellQuote(join(stateDir, 'qemu'))}
incoming=()
[ "$mode" = incoming ] && incoming=(-incoming defer)
exec ${qemuBinary} -name "$vm" -machine pc -accel tcg -m "$memory_mib" -smp 1 \\
  -nodefaults -display none \\
  -kernel ${shellQuote(shared.kernelPath)} -append "ws=$working_set_mib" \\
  -chardev "file,id=serial0,path=$state/$vm.serial,append=on" -serial chardev:serial0 \\
  -qmp "unix:$monitor,server=on,wait=off" \\
  -pidfile "$state/$vm.pid" -daemonize "\${incoming[@]}"
`;
}

/** The QEMU side of one lab host. */
export class LabQemuHost {
  readonly stateDir: string;
  readonly scriptPath: string;

  constructor(
    readonly shared: LabQemuShared,
    readonly hostName: string,
    hostStateDir: string,
    readonly options: LabQemuOptions,
  ) {
    this.stateDir = join(hostStateDir, 'qemu');
    mkdirSync(this.stateDir, { recursive: true, mode: 0o755 });
    // The login account runs QEMU, which creates its socket, pid file and serial log here.
    chownSync(this.stateDir, shared.account.uid, shared.account.gid);
    const binDir = join(hostStateDir, 'bin');
    mkdirSync(binDir, { recursive: true, mode: 0o755 });
    this.scriptPath = join(binDir, 'qemu-vm');
    writeFileSync(this.scriptPath, startScript(shared, hostStateDir));
    chmodSync(this.scriptPath, 0o755);
  }

  /** Starts the VMs of the options on this host. */
  startConfiguredVms(): void {
    for (const vm of this.options.vms ?? []) this.startVm(vm);
  }

  monitorSocket(vm: string): string {
    return join(this.stateDir, `${vm}.qmp`);
  }

  serialPath(vm: string): string {
    return join(this.stateDir, `${vm}.serial`);
  }

  /**
   * Defines the VM lab-wide and starts it on this host as the lab's login account, as the
   * host's sshd would. Returns once QEMU runs the guest.
   */
  startVm(spec: LabQemuVm): void {
    defineVm(this.shared, spec);
    const vm = spec.name;
    const result = spawnSync(this.scriptPath, [vm, this.monitorSocket(vm)], {
      uid: this.shared.account.uid,
      gid: this.shared.account.gid,
      env: { PATH: '/usr/bin:/bin', FERRY_LAB_ID: this.shared.labId, FERRY_LAB_HOST: this.hostName },
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (result.status !== 0) {
      throw new Error(
        `Lab host ${this.hostName}: starting VM ${vm} failed: ${result.stderr || result.error}`,
      );
    }
  }

  /** Ends the VM's QEMU on this host, if one runs, and waits until it has exited. */
  async stopVm(vm: string): Promise<void> {
    const pid = this.pidOf(vm);
    if (pid !== undefined && isAlive(pid)) await killTree(pid, 2000);
  }

  /**
   * Pid of the VM's QEMU on this host, from its pid file, when that process still runs QEMU
   * with this VM's name (a pid can be reused once QEMU has exited).
   */
  pidOf(vm: string): number | undefined {
    const path = join(this.stateDir, `${vm}.pid`);
    if (!existsSync(path)) return undefined;
    const pid = Number(readFileSync(path, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const nameAt = argv.indexOf('-name');
      return argv[0] === qemuBinary && argv[nameAt + 1] === vm ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** Returns the guest's tick counters printed on this host so far, in order. */
  ticks(vm: string): number[] {
    const path = this.serialPath(vm);
    if (!existsSync(path)) return [];
    const ticks: number[] = [];
    for (const match of readFileSync(path, 'latin1').matchAll(/ferry-guest tick (\d+)\n/g)) {
      ticks.push(Number(match[1]));
    }
    return ticks;
  }

  /** Reads QEMU's run state of the VM on this host (`running`, `postmigrate`, ...), or `absent`. */
  async status(vm: string): Promise<string> {
    const socket = connect(this.monitorSocket(vm));
    const connected = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true));
      socket.once('error', () => resolve(false));
    });
    if (!connected) return 'absent';
    const qmp = await QmpClient.open(socket, { host: this.hostName, socketPath: this.monitorSocket(vm) });
    try {
      return (await qmp.execute<{ status: string }>('query-status')).status;
    } finally {
      qmp.close();
    }
  }

  /** Returns the host's `qemu` inventory section. */
  inventorySettings(): Record<string, unknown> {
    const { vms: _vms, ...settings } = this.options;
    return {
      incomingCommand: [this.scriptPath, '{vm}', '{monitor}', 'incoming'],
      monitorSocket: join(this.stateDir, '{vm}.qmp'),
      ...settings,
    };
  }
}

/** Writes the lab-wide definition of a VM: its memory and working set, in MiB. */
export function defineVm(shared: LabQemuShared, vm: LabQemuVm): void {
  if (!vmNamePattern.test(vm.name)) throw new Error(`Invalid lab VM name '${vm.name}'.`);
  writeFileSync(join(shared.dir, 'vms', vm.name), `${vm.memoryMiB ?? 64} ${vm.workingSetMiB ?? 4}\n`, {
    mode: 0o644,
  });
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

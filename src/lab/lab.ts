import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  unwatchFile,
  watchFile,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { stringify as stringifyYaml } from 'yaml';

import { ensureLabAccount, type LabAccount } from './account.js';
import { writeHostTools } from './host-tools.js';
import { generateKeyPair, type KeyPair } from './keys.js';
import { NamesTable } from './names.js';
import { findPortFreeOn } from './ports.js';
import { isAlive, killTree, listeningPortsOf, processesWithEnv } from './processes.js';
import { LabQemuHost, prepareLabQemu, type LabQemuOptions, type LabQemuShared } from './qemu/host.js';
import { startRedis, type LabRedis, type LabRedisOptions } from './redis.js';
import { LabSshd } from './sshd.js';
import { TransferLog } from './transfers.js';
import { startXenSimulator, type DomainSpec, type SimHost, type XenSimulator } from './xen/simulator.js';

/** One simulated hypervisor host, as the caller describes it. */
export interface LabHostOptions {
  name: string;
  domains?: DomainSpec[];
  /** Default 8192 MiB. */
  totalMemoryMiB?: number;
  /** Default 1024 MiB. */
  dom0MemoryMiB?: number;
  /** Default ['/srv/xen']. */
  storagePaths?: string[];
  /** Default ['xenbr0']. */
  bridges?: string[];
  /** Full xend-config.sxp text; default: relocation on, address '', the shipped allow list. */
  xendConfig?: string;
  /** sshd's AllowTcpForwarding. Default true. */
  allowTcpForwarding?: boolean;
  /** Sender's rate in bytes per second. Default unlimited. */
  transferRateBytesPerSec?: number;
  /** Makes the host a QEMU/KVM host (driver qemu) that runs real QEMU VMs of the lab guest. */
  qemu?: LabQemuOptions;
}

export interface LabOptions {
  /** Default: xen-a holding web01 (512 MiB, 1 vCPU) and an empty xen-b. */
  hosts?: LabHostOptions[];
  /** Start a private Redis (or use REDIS_URL). Default true. */
  redis?: boolean | LabRedisOptions;
  /** Bytes a migration sends per MiB of domain memory. Default 1024, so a 512 MiB VM moves 512 KiB. */
  bytesPerMiB?: number;
}

/** A running lab host: its sshd, its simulated hypervisor, and its inventory entry's facts. */
export interface LabHost {
  name: string;
  address: string;
  sshPort: number;
  hostKey: KeyPair;
  sshd: LabSshd;
  sim: SimHost;
  stateDir: string;
  /** The host's QEMU VMs, on a host started with `qemu` options. */
  qemu?: LabQemuHost;
}

export const defaultLabHosts: LabHostOptions[] = [
  {
    name: 'xen-a',
    domains: [
      {
        name: 'web01',
        memoryMiB: 512,
        vcpus: 1,
        disks: ['file:/srv/xen/web01.img'],
        vifs: [{ bridge: 'xenbr0' }],
      },
    ],
  },
  { name: 'xen-b' },
];

/** Error thrown by Lab.stop() when something the lab started is still there. */
export class LabLeakError extends Error {
  constructor(readonly leftovers: string[]) {
    super(`The lab left resources behind:\n- ${leftovers.join('\n- ')}`);
    this.name = 'LabLeakError';
  }
}

/**
 * The migration lab: a private Redis, and per simulated host a real sshd on its own loopback
 * address with the simulated xend and xm behind it. Everything it starts, stop() ends and
 * removes, and stop() fails with LabLeakError if a process, port or folder is left behind.
 */
export class Lab {
  readonly hosts: LabHost[] = [];
  redis: LabRedis | undefined;
  sim: XenSimulator | undefined;
  /** The guest kernel and VM definitions, once a host with `qemu` options has started. */
  qemuShared: LabQemuShared | undefined;
  readonly transfers: TransferLog;
  readonly names = new NamesTable();
  readonly id = randomBytes(6).toString('hex');
  bastionKey!: KeyPair;
  account!: LabAccount;
  #stopped = false;
  readonly #watchedFiles: string[] = [];

  private constructor(readonly dir: string) {
    this.transfers = new TransferLog(join(dir, 'transfers.jsonl'));
  }

  /** Path of the inventory file that describes the lab's hosts to ferry. */
  get inventoryPath(): string {
    return join(this.dir, 'inventory.yaml');
  }

  host(name: string): LabHost {
    const host = this.hosts.find((candidate) => candidate.name === name);
    if (host === undefined) {
      throw new Error(`No lab host named '${name}' (hosts: ${this.hosts.map((h) => h.name).join(', ')}).`);
    }
    return host;
  }

  static async start(options: LabOptions = {}): Promise<Lab> {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-lab-'));
    // The login account must traverse the lab folders to reach its keys and the xm scripts.
    chmodSync(dir, 0o755);
    const lab = new Lab(dir);
    try {
      await lab.#boot(options);
    } catch (error) {
      await lab.stop().catch(() => undefined);
      throw error;
    }
    return lab;
  }

  async #boot(options: LabOptions): Promise<void> {
    this.account = ensureLabAccount();
    const hostOptions = options.hosts ?? defaultLabHosts;

    if (options.redis !== false) {
      this.redis = await startRedis(typeof options.redis === 'object' ? options.redis : {});
    }

    const keysDir = join(this.dir, 'bastion');
    mkdirSync(keysDir, { mode: 0o700 });
    this.bastionKey = generateKeyPair(join(keysDir, 'id_ed25519'), 'ferry-bastion');
    // Lab-only key that hosts use to log into each other in direct mode.
    const hypervisorKey = generateKeyPair(join(keysDir, 'hypervisor_ed25519'), 'ferry-lab-hypervisor');

    const layouts = [];
    for (const [index, host] of hostOptions.entries()) {
      const address = `127.0.0.${index + 2}`;
      this.names.add(host.name, address);
      const stateDir = join(this.dir, 'hosts', host.name);
      mkdirSync(join(stateDir, 'ssh'), { recursive: true, mode: 0o755 });
      const hostKey = generateKeyPair(join(stateDir, 'ssh', 'ssh_host_ed25519_key'), host.name);
      layouts.push({
        host,
        address,
        stateDir,
        hostKey,
        sshPort: await findPortFreeOn([address, '127.0.0.1']),
      });
    }

    this.sim = await startXenSimulator({
      names: this.names,
      transfers: this.transfers,
      bytesPerMiB: options.bytesPerMiB ?? 1024,
      hosts: await Promise.all(
        layouts.map(async ({ host, address, stateDir }) => ({
          name: host.name,
          address,
          stateDir,
          relocationPort: await findPortFreeOn(['127.0.0.1', address]),
          totalMemoryMiB: host.totalMemoryMiB ?? 8192,
          dom0MemoryMiB: host.dom0MemoryMiB ?? 1024,
          storagePaths: host.storagePaths ?? ['/srv/xen'],
          bridges: host.bridges ?? ['xenbr0'],
          domains: host.domains ?? [],
          ...(host.xendConfig === undefined ? {} : { xendConfig: host.xendConfig }),
          ...(host.transferRateBytesPerSec === undefined
            ? {}
            : { transferRateBytesPerSec: host.transferRateBytesPerSec }),
        })),
      ),
    });

    const authorizedKeys = join(this.dir, 'authorized_keys');
    writeFileSync(authorizedKeys, `${this.bastionKey.publicLine}\n${hypervisorKey.publicLine}\n`, {
      mode: 0o644,
    });
    const knownHosts = layouts.map((l) => `[${l.address}]:${l.sshPort} ${l.hostKey.publicLine}\n`).join('');

    for (const layout of layouts) {
      const sshDir = join(layout.stateDir, 'ssh');
      // Direct mode runs OpenSSH as the login account on the source host, with these files.
      writeFileSync(join(sshDir, 'known_hosts'), knownHosts, { mode: 0o644 });
      writeFileSync(join(sshDir, 'id_ed25519'), readFileSync(hypervisorKey.privatePath), { mode: 0o600 });
      chownSync(join(sshDir, 'id_ed25519'), this.account.uid, this.account.gid);
      // The login account keeps the files of running migrate commands here.
      mkdirSync(join(layout.stateDir, 'run'), { mode: 0o755 });
      chownSync(join(layout.stateDir, 'run'), this.account.uid, this.account.gid);
      writeHostTools(
        layout.stateDir,
        layout.host.bridges ?? ['xenbr0'],
        layout.host.storagePaths ?? ['/srv/xen'],
      );

      const sshd = new LabSshd({
        name: layout.host.name,
        address: layout.address,
        port: layout.sshPort,
        dir: layout.stateDir,
        hostKeyPath: layout.hostKey.privatePath,
        authorizedKeysPath: authorizedKeys,
        loginUser: this.account.user,
        allowTcpForwarding: layout.host.allowTcpForwarding ?? true,
        labId: this.id,
      });
      await sshd.start();
      let qemu: LabQemuHost | undefined;
      if (layout.host.qemu !== undefined) {
        this.qemuShared ??= prepareLabQemu(this.dir, this.account, this.id);
        qemu = new LabQemuHost(this.qemuShared, layout.host.name, layout.stateDir, layout.host.qemu);
        qemu.startConfiguredVms();
      }
      this.hosts.push({
        name: layout.host.name,
        address: layout.address,
        sshPort: layout.sshPort,
        hostKey: layout.hostKey,
        sshd,
        sim: this.sim.host(layout.host.name),
        stateDir: layout.stateDir,
        ...(qemu === undefined ? {} : { qemu }),
      });
    }
    this.writeInventory();
    this.#watchXendConfigs();
  }

  /** Writes inventory.yaml for the current hosts, pinning each host key by fingerprint. */
  writeInventory(): void {
    const hosts: Record<string, unknown> = {};
    for (const host of this.hosts) {
      hosts[host.name] = {
        address: host.address,
        port: host.sshPort,
        user: this.account.user,
        identityFile: this.bastionKey.privatePath,
        hostKey: host.hostKey.fingerprint,
        driver: host.qemu === undefined ? 'xm' : 'qemu',
        ...(host.qemu === undefined ? {} : { qemu: host.qemu.inventorySettings() }),
        relocationPort: host.sim.relocationPort,
        sudo: false,
        workDir: join(host.stateDir, 'run'),
        xendLog: join(host.stateDir, 'xend.log'),
        commands: {
          xm: host.sim.xmPath,
          ssh: '/usr/bin/ssh',
          ip: join(host.stateDir, 'bin', 'ip'),
          ls: join(host.stateDir, 'bin', 'ls'),
          tail: '/usr/bin/tail',
        },
        direct: {
          identityFile: join(host.stateDir, 'ssh', 'id_ed25519'),
          knownHostsFile: join(host.stateDir, 'ssh', 'known_hosts'),
        },
      };
    }
    const header = '# Inventory of the ferry lab, written by the lab. Every host is a local sshd.\n';
    writeFileSync(this.inventoryPath, header + stringifyYaml({ hosts }));
  }

  /** Pids of processes started by lab sessions (direct-mode ssh clients, xm clients, shells). */
  sessionProcesses(): number[] {
    return processesWithEnv('FERRY_LAB_ID', this.id);
  }

  /**
   * Stops everything the lab started, removes its folder, and throws LabLeakError if any
   * process, port or folder is still there afterwards.
   */
  /**
   * Reloads a host's xend-config.sxp when someone edits it, as restarting xend would on a real
   * host, so that a person trying the lab by hand sees the edit take effect within a second.
   */
  #watchXendConfigs(): void {
    for (const host of this.hosts) {
      const path = join(host.stateDir, 'xend-config.sxp');
      watchFile(path, { interval: 500 }, () => {
        let text: string;
        try {
          text = readFileSync(path, 'utf8');
        } catch {
          return;
        }
        if (text === host.sim.xendConfig()) return;
        host.sim.reloadXendConfig().catch((error: unknown) => {
          process.emitWarning(`Lab host ${host.name}: cannot reload ${path}: ${String(error)}`);
        });
      });
      this.#watchedFiles.push(path);
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const path of this.#watchedFiles) unwatchFile(path);
    const pids: number[] = [];
    const ports: Array<[string, number]> = [];
    for (const host of this.hosts) {
      if (host.sshd.pid !== undefined) pids.push(host.sshd.pid);
      ports.push(
        [host.address, host.sshPort],
        ['127.0.0.1', host.sim.relocationPort],
        [host.address, host.sim.relocationPort],
      );
      await host.sshd.stop();
    }
    for (const pid of this.sessionProcesses()) await killTree(pid, 500);
    await this.sim?.stop();
    if (this.redis?.pid !== undefined) {
      pids.push(this.redis.pid);
      ports.push(['127.0.0.1', this.redis.port]);
    }
    await this.redis?.stop();
    rmSync(this.dir, { recursive: true, force: true });

    const leftovers: string[] = [];
    for (const pid of pids) if (isAlive(pid)) leftovers.push(`process ${pid}`);
    for (const pid of this.sessionProcesses()) leftovers.push(`session process ${pid}`);
    // A port counts as left behind only while a process of this lab still listens on it:
    // labs of parallel test files share the loopback addresses and may reuse a port at once.
    const ownListeners = new Set(listeningPortsOf([process.pid, ...pids.filter(isAlive)]));
    for (const [address, port] of ports) {
      if (ownListeners.has(port)) leftovers.push(`listener ${address}:${port}`);
    }
    if (existsSync(this.dir)) leftovers.push(`folder ${this.dir}`);
    if (leftovers.length > 0) throw new LabLeakError(leftovers);
  }
}

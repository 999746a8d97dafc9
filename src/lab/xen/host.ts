import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Socket } from 'node:net';
import type { HostDevices } from './devices.js';
import { findDeviceProblem, validateDomainSpec } from './devices.js';
import { DomainTable, viewDomain } from './domains.js';
import { receiveMigration } from './incoming.js';
import { migrateDomain, type MigrateRequest, type MigrationEnvironment } from './outgoing.js';
import { RelocationServer } from './relocation.js';
import { parseXendRelocationConfig, type XendRelocationConfig } from './sxp.js';
import type { DomainSpec, DomainView, SimHost, SimHostSpec, XmResult } from './types.js';
import { renderXendConfig, setRelocationServerInText } from './xend-config.js';
import { XendLogFile, type XendLogger } from './xend-log.js';
import { runXm } from './xm-commands.js';
import type { HostInfo } from './xm-format.js';
import { writeXmScript } from './xm-script.js';

const DEFAULT_DOM0_MEMORY_MIB = 1024;
const DEFAULT_CPUS = 2;
const DEFAULT_DIRTY_SHARE = 0.1;

/**
 * One simulated Xen host: its domains, its xend-config.sxp and relocation listeners, its
 * xend.log and its generated xm client. Every change of its domains is written to
 * `<stateDir>/state.json`, but the host reads its state only from memory.
 */
export class LabHost implements SimHost {
  readonly name: string;
  readonly address: string;
  readonly stateDir: string;
  readonly xmPath: string;
  readonly domainTable: DomainTable;
  readonly dirtyShare: number;
  readonly log: XendLogger;

  readonly #spec: SimHostSpec;
  readonly #env: MigrationEnvironment;
  readonly #logFile: XendLogFile;
  readonly #relocation: RelocationServer;
  readonly #startedAt = Date.now();
  readonly #configPath: string;
  readonly #statePath: string;
  readonly #tasks = new Set<Promise<XmResult>>();
  #config: XendRelocationConfig;
  #configText: string;
  #configChange: Promise<void> = Promise.resolve();
  #transferRate: number | undefined;
  #closed = false;
  #stopWriting = false;

  private constructor(spec: SimHostSpec, env: MigrationEnvironment, forward: (line: string) => void) {
    this.#spec = spec;
    this.#env = env;
    this.name = spec.name;
    this.address = spec.address;
    this.stateDir = resolve(spec.stateDir);
    this.xmPath = join(this.stateDir, 'bin', 'xm');
    this.dirtyShare = spec.dirtyShare ?? DEFAULT_DIRTY_SHARE;
    this.#transferRate = spec.transferRateBytesPerSec;
    this.#configPath = join(this.stateDir, 'xend-config.sxp');
    this.#statePath = join(this.stateDir, 'state.json');

    mkdirSync(this.stateDir, { recursive: true });
    chmodSync(this.stateDir, 0o755);
    this.#logFile = new XendLogFile(join(this.stateDir, 'xend.log'), spec.name, forward);
    chmodSync(this.#logFile.path, 0o644);
    this.log = this.#logFile.write;

    this.#configText = spec.xendConfig ?? renderXendConfig({ port: spec.relocationPort });
    this.#config = parseXendRelocationConfig(this.#configText);
    this.#writeFile(this.#configPath, this.#configText);

    this.domainTable = new DomainTable(() => this.#persist());
    this.#relocation = new RelocationServer({
      hostName: spec.name,
      hostAddress: spec.address,
      names: env.names,
      sockets: env.sockets,
      ledger: env.ledger,
      log: this.log,
      onAccepted: (socket: Socket, peer: string) => receiveMigration(socket, this, env.ledger, peer),
    });
  }

  /** Creates the host's files and domains and opens its relocation listeners. */
  static async start(
    spec: SimHostSpec,
    env: MigrationEnvironment,
    controlPort: number,
    forward: (line: string) => void,
  ): Promise<LabHost> {
    const host = new LabHost(spec, env, forward);
    host.setTransferRate(spec.transferRateBytesPerSec);
    host.#persist();
    for (const domain of spec.domains) host.addDomain(domain);
    writeXmScript(host.xmPath, spec.name, controlPort);
    host.log('INFO', 'SrvDaemon', `Xend started for ${spec.name} (${spec.address}).`);
    await host.#relocation.apply(host.#config);
    return host;
  }

  get relocationPort(): number {
    return this.#config.port;
  }

  get dom0MemoryMiB(): number {
    return this.#spec.dom0MemoryMiB ?? DEFAULT_DOM0_MEMORY_MIB;
  }

  domains(): DomainView[] {
    const now = Date.now();
    return this.domainTable.list().map((domain) => viewDomain(domain, now));
  }

  /** Domain-0 followed by every other domain, as `xm list` shows them. */
  listDomains(): DomainView[] {
    const dom0: DomainView = {
      name: 'Domain-0',
      id: 0,
      uuid: '00000000-0000-0000-0000-000000000000',
      memoryMiB: this.dom0MemoryMiB,
      vcpus: this.#spec.cpus ?? DEFAULT_CPUS,
      state: 'r-----',
      cpuTimeSeconds: (Date.now() - this.#startedAt) / 1000,
      disks: [],
      vifs: [],
    };
    return [dom0, ...this.domains()];
  }

  addDomain(spec: DomainSpec): void {
    validateDomainSpec(spec, this.name);
    if (this.domainTable.list().some((domain) => domain.name === spec.name)) {
      throw new Error(`Domain '${spec.name}' already exists on host '${this.name}'; choose another name.`);
    }
    const problem = findDeviceProblem(spec, this.devices());
    if (problem !== undefined) {
      throw new Error(
        `Cannot create domain '${spec.name}' on host '${this.name}': ${problem} ` +
          'Add the folder to storagePaths or the bridge to bridges.',
      );
    }
    if (spec.memoryMiB > this.freeMemoryMiB()) {
      throw new Error(
        `Cannot create domain '${spec.name}' on host '${this.name}': it needs ${spec.memoryMiB} MiB ` +
          `but only ${this.freeMemoryMiB()} MiB are free; raise totalMemoryMiB.`,
      );
    }
    this.domainTable.create({ ...spec, state: spec.state ?? 'running', incoming: false });
  }

  removeDomain(name: string): void {
    const domain = this.domainTable.list().find((candidate) => candidate.name === name);
    if (domain === undefined) throw new Error(`Domain '${name}' does not exist on host '${this.name}'.`);
    this.domainTable.remove(domain);
    this.log('INFO', 'XendDomainInfo', `Domain ${name} (${domain.id}) destroyed.`);
  }

  freeMemoryMiB(): number {
    return this.#spec.totalMemoryMiB - this.dom0MemoryMiB - this.domainTable.usedMemoryMiB();
  }

  devices(): HostDevices {
    return { storagePaths: this.#spec.storagePaths, bridges: this.#spec.bridges };
  }

  info(): HostInfo {
    return {
      host: this.name,
      cpus: this.#spec.cpus ?? DEFAULT_CPUS,
      totalMemoryMiB: this.#spec.totalMemoryMiB,
      freeMemoryMiB: this.freeMemoryMiB(),
    };
  }

  xendConfig(): string {
    return this.#configText;
  }

  writeXendConfig(text: string): Promise<void> {
    return this.#changeConfig(() => text);
  }

  setRelocationServer(on: boolean): Promise<void> {
    return this.#changeConfig((current) => setRelocationServerInText(current, on));
  }

  /** Rereads xend-config.sxp from disk, as restarting xend after a hand edit does, and applies it. */
  reloadXendConfig(): Promise<void> {
    return this.#changeConfig(() => readFileSync(this.#configPath, 'utf8'));
  }

  #changeConfig(rewrite: (current: string) => string): Promise<void> {
    // Changes run one after another, so two quick rewrites cannot interleave their listeners.
    const change = this.#configChange.then(async () => {
      if (this.#closed) {
        throw new Error(`The xend of lab host '${this.name}' has stopped; start a new simulator.`);
      }
      const text = rewrite(this.#configText);
      const config = parseXendRelocationConfig(text);
      this.#configText = text;
      this.#config = config;
      this.#writeFile(this.#configPath, text);
      this.log('INFO', 'SrvDaemon', 'xend-config.sxp rewritten; restarting the relocation server.');
      await this.#relocation.apply(config);
    });
    this.#configChange = change.catch(() => undefined);
    return change;
  }

  setTransferRate(bytesPerSec: number | undefined): void {
    if (bytesPerSec !== undefined && !(Number.isFinite(bytesPerSec) && bytesPerSec > 0)) {
      throw new Error(
        `Invalid transfer rate ${bytesPerSec} for host '${this.name}': expected bytes per second above 0, or undefined.`,
      );
    }
    this.#transferRate = bytesPerSec;
  }

  transferRate(): number | undefined {
    return this.#transferRate;
  }

  xendLog(): string {
    return this.#logFile.read();
  }

  run(args: string[]): Promise<XmResult> {
    if (this.#closed) {
      return Promise.resolve({
        stdout: '',
        stderr: `Error: the lab's xend of ${this.name} has stopped.\n`,
        code: 1,
      });
    }
    const task = runXm(this, args);
    this.#tasks.add(task);
    void task.finally(() => this.#tasks.delete(task)).catch(() => undefined);
    return task;
  }

  migrate(request: MigrateRequest): Promise<XmResult> {
    return migrateDomain(this, this.#env, request);
  }

  /** Closes the listeners and waits for running commands, which end once their sockets are destroyed. */
  async closeListeners(): Promise<void> {
    this.#closed = true;
    await this.#configChange;
    await this.#relocation.close();
  }

  /** Waits for running commands, then stops writing files. */
  async finish(): Promise<void> {
    await Promise.allSettled([...this.#tasks]);
    this.#logFile.close();
    this.#stopWriting = true;
  }

  #persist(): void {
    if (this.#stopWriting) return;
    const state = {
      host: this.name,
      address: this.address,
      updatedAt: new Date().toISOString(),
      totalMemoryMiB: this.#spec.totalMemoryMiB,
      dom0MemoryMiB: this.dom0MemoryMiB,
      freeMemoryMiB: this.freeMemoryMiB(),
      nextDomainId: this.domainTable.nextId,
      domains: this.domains(),
    };
    try {
      this.#writeFile(this.#statePath, `${JSON.stringify(state, null, 2)}\n`);
    } catch (error) {
      // A vanished state folder must not break the simulation; report it once.
      this.#stopWriting = true;
      this.log(
        'ERROR',
        'lab',
        `Cannot write ${this.#statePath}; state.json is no longer updated: ${String(error)}`,
      );
    }
  }

  /** Replaces a file in one rename, so a reader never sees half of it, and makes it world-readable. */
  #writeFile(path: string, text: string): void {
    const temporary = `${path}.${process.pid}.tmp`;
    writeFileSync(temporary, text, { mode: 0o644 });
    chmodSync(temporary, 0o644);
    renameSync(temporary, path);
  }
}

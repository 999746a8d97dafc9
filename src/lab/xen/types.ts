import type { NamesTable } from '../names.js';
import type { TransferLog } from '../transfers.js';

/** A virtual interface: the host bridge it is plugged into and its MAC address. */
export interface VifSpec {
  bridge: string;
  /** Default: a random address in Xen's range 00:16:3e:xx:xx:xx, kept across migrations. */
  mac?: string;
}

/** A domain (VM) to create on a simulated host. */
export interface DomainSpec {
  /** Letters, digits and `_ . : + -`; must be unique on its host. */
  name: string;
  memoryMiB: number;
  vcpus: number;
  /** Xen disk unames such as 'file:/var/lib/xen/images/web01.img'; each path must lie under a storage path. */
  disks: string[];
  vifs: VifSpec[];
  /** Default: 'running'. */
  state?: 'running' | 'paused';
  /** Default: a random UUID, kept across migrations. */
  uuid?: string;
}

/** One simulated hypervisor host. */
export interface SimHostSpec {
  name: string;
  /** The host's own loopback address, such as '127.0.0.2'. */
  address: string;
  /** Folder for xend-config.sxp, state.json, xend.log and bin/xm; created when missing. */
  stateDir: string;
  /** Relocation port written into the default xend-config.sxp; a given `xendConfig` sets its own. */
  relocationPort: number;
  /** Full xend-config.sxp text. Default: `renderXendConfig({ port: relocationPort })`. */
  xendConfig?: string;
  totalMemoryMiB: number;
  /** Memory of Domain-0. Default: 1024. */
  dom0MemoryMiB?: number;
  /** Physical CPUs reported by `xm info` and given to Domain-0. Default: 2. */
  cpus?: number;
  /** Folders whose files exist on this host, such as shared storage '/var/lib/xen/images'. */
  storagePaths: string[];
  /** Bridges that exist on this host, such as 'xenbr0'. */
  bridges: string[];
  domains: DomainSpec[];
  /** Maximum rate in bytes per second at which this host sends a migration. Default: unlimited. */
  transferRateBytesPerSec?: number;
  /** Share of memory sent a second time as dirtied pages during a live migration. Default: 0.1. */
  dirtyShare?: number;
}

export interface XenSimulatorOptions {
  /** Resolves host names for `xm migrate` and reverse-resolves peers for the allow list. Lab hosts missing from it are added. */
  names: NamesTable;
  /** Receives one record per `xm migrate` that tried to connect to its target, refused connections included. */
  transfers: TransferLog;
  hosts: SimHostSpec[];
  /** Bytes actually sent per MiB of domain memory. Default: 1048576 (real size). */
  bytesPerMiB?: number;
  /** Receives the simulator's lifecycle lines and every xend.log line, prefixed with the host name. */
  logger?: (line: string) => void;
}

/** A domain as `xm list` shows it. */
export interface DomainView {
  name: string;
  id: number;
  uuid: string;
  memoryMiB: number;
  vcpus: number;
  /** Six-character flags: r running, b blocked, p paused, s shutdown, c crashed, d dying; '-' when unset. */
  state: string;
  /** Simulated CPU time in seconds: wall time spent unpaused since the domain started on this host. */
  cpuTimeSeconds: number;
  disks: string[];
  vifs: Array<{ bridge: string; mac: string }>;
}

/** Output and exit code of one xm command. */
export interface XmResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface SimHost {
  readonly name: string;
  readonly address: string;
  /** Port from the current xend-config.sxp. */
  readonly relocationPort: number;
  readonly stateDir: string;
  /** Absolute path of the generated bash `xm` client of this host. */
  readonly xmPath: string;
  /** Every domain except Domain-0, ordered by id; includes migrating and incoming ones. */
  domains(): DomainView[];
  /** Creates a running (or paused) domain; throws when the spec is invalid or memory is short. */
  addDomain(spec: DomainSpec): void;
  /** Destroys a domain by name; throws when there is none. */
  removeDomain(name: string): void;
  /** Total memory minus Domain-0 and every domain, incoming ones included. */
  freeMemoryMiB(): number;
  /** Current xend-config.sxp text. */
  xendConfig(): string;
  /** Validates and writes xend-config.sxp, then restarts the relocation listeners to match it. */
  writeXendConfig(text: string): Promise<void>;
  /** Rewrites `(xend-relocation-server yes|no)` in the current config and restarts the listeners. */
  setRelocationServer(on: boolean): Promise<void>;
  /** Rereads xend-config.sxp after a hand edit and restarts the listeners, as restarting xend does. */
  reloadXendConfig(): Promise<void>;
  /** Sets the sending rate limit in bytes per second; undefined removes it. Running migrations follow at once. */
  setTransferRate(bytesPerSec: number | undefined): void;
  /** Contents of this host's xend.log. */
  xendLog(): string;
  /** Runs `xm ARGS` against this host's simulated xend. */
  run(args: string[]): Promise<XmResult>;
}

export interface XenSimulator {
  /** Throws when no host has that name. */
  host(name: string): SimHost;
  hosts(): SimHost[];
  /** Port on 127.0.0.1 of the control server that the generated xm scripts talk to. */
  readonly controlPort: number;
  /** Closes every listener and socket of the simulator and ends running migrations; idempotent. */
  stop(): Promise<void>;
}

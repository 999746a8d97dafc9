/**
 * Measure 1: tunnel throughput. One sender writes `bytes` into each path as fast as it takes
 * them, into one byte-counting receiver, `runs` times per path. The paths take turns within
 * each round, and each round starts one path later, so that a burst of load from other
 * processes, or what one path leaves behind for the next, spreads over all of them.
 *
 * Paths (every host is an OpenSSH sshd of the lab on its own loopback address):
 * - tcp: the sender connects straight to the receiver; the ceiling.
 * - openssh-recipe: `ssh -N -L` to the target with OpenSSH's default cipher, as the hand-run
 *   recipe runs it on the source host.
 * - openssh-gcm: the same with `-o Ciphers=aes128-gcm@openssh.com`.
 * - openssh-two-hop: the OpenSSH form of a relay through the bastion in the middle: `ssh -R`
 *   to the source (its sshd listens) chained on the bastion to `ssh -L` to the target, both
 *   with the cipher that ferry's own connections negotiated.
 * - ferry-relay: ferry's relay tunnel, from this process as the bastion.
 * - ferry-direct: ferry's direct tunnel (OpenSSH started on the source through ferry).
 *
 * CPU is charged per path to every process that carries the stream: ssh clients, the sshd
 * session processes of both hosts, and for ferry's paths this process. The part used on the
 * bastion (this process, or the two-hop relay's ssh clients) is also reported alone. The
 * sender and the receiver are counted apart.
 */
import { loadInventory } from '../src/config/inventory.js';
import { Lab } from '../src/lab/lab.js';
import { findFreePort } from '../src/lab/ports.js';
import { ssh2CipherOrder } from '../src/ssh/ciphers.js';
import { SshConnection } from '../src/ssh/connection.js';
import { openDirectTunnel, type DirectTunnel } from '../src/ssh/direct.js';
import { openRelayTunnel, type RelayTunnel } from '../src/ssh/relay.js';
import { cpuSecondsBetween, snapshotCpu } from './lib/cpu.js';
import { StreamEndpoints } from './lib/endpoints.js';
import { startOpenSshForward, type OpenSshForward, type OpenSshHop } from './lib/openssh.js';
import { median } from './lib/stats.js';

export const tunnelPathIds = [
  'tcp',
  'openssh-recipe',
  'openssh-gcm',
  'openssh-two-hop',
  'ferry-relay',
  'ferry-direct',
] as const;
export type TunnelPathId = (typeof tunnelPathIds)[number];

export interface TunnelBenchOptions {
  /** Bytes per stream. Default 1 GiB. */
  bytes?: number;
  /** Streams per path. Default 3. */
  runs?: number;
  /** Paths to measure, in the report's order. Default all of tunnelPathIds. */
  paths?: readonly TunnelPathId[];
  /** Called with one line per finished stream. */
  progress?: (line: string) => void;
}

export interface TunnelRun {
  mbPerSecond: number;
  seconds: number;
  tunnelCpuSeconds: number;
  /** Part of tunnelCpuSeconds used on the bastion: ferry's process, or the ssh clients of the two-hop relay. */
  bastionCpuSeconds: number;
  endpointCpuSeconds: number;
}

export interface TunnelPathResult {
  id: TunnelPathId;
  label: string;
  /** Cipher negotiated for the data's direction; undefined for plain TCP. */
  cipher: string | undefined;
  /** The OpenSSH path with the same route and cipher that this one is compared with. */
  reference: TunnelPathId | undefined;
  runs: TunnelRun[];
  /** Median over the runs, in MB/s (10^6 bytes per second). */
  mbPerSecond: number;
  /** Median CPU seconds per GiB of the processes that carry the stream. */
  tunnelCpuSecondsPerGiB: number;
  /** Median CPU seconds per GiB on the bastion; 0 for paths that do not pass it. */
  bastionCpuSecondsPerGiB: number;
  /** Median CPU seconds per GiB of the sender and the receiver. */
  endpointCpuSecondsPerGiB: number;
}

export interface TunnelBenchResult {
  bytes: number;
  runsPerPath: number;
  paths: TunnelPathResult[];
}

const openingOrder: TunnelPathId[] = [
  'tcp',
  'openssh-recipe',
  'openssh-gcm',
  'ferry-relay',
  'openssh-two-hop',
  'ferry-direct',
];

const labels: Record<TunnelPathId, string> = {
  tcp: 'Direct TCP on loopback (ceiling)',
  'openssh-recipe': 'OpenSSH `ssh -L`, default cipher (hand-run recipe)',
  'openssh-gcm': 'OpenSSH `ssh -L`, aes128-gcm',
  'openssh-two-hop': 'OpenSSH two-hop relay (`ssh -R` + `ssh -L` on the bastion)',
  'ferry-relay': 'ferry `relay` mode',
  'ferry-direct': 'ferry `direct` mode',
};

const references: Record<TunnelPathId, TunnelPathId | undefined> = {
  tcp: undefined,
  'openssh-recipe': 'openssh-recipe',
  'openssh-gcm': 'openssh-gcm',
  'openssh-two-hop': 'openssh-two-hop',
  'ferry-relay': 'openssh-two-hop',
  'ferry-direct': 'openssh-gcm',
};

/** A path set up and ready to carry streams. */
interface OpenPath {
  id: TunnelPathId;
  /** Port on 127.0.0.1 that the sender connects to. */
  port: number;
  cipher: string | undefined;
  /** Processes charged with the stream's CPU, with their descendants. */
  cpuTrees: number[];
  /** Processes on the bastion, charged without their descendants (this process's are the lab's). */
  cpuSingles: number[];
  close(): Promise<void>;
}

export async function runTunnelBench(options: TunnelBenchOptions = {}): Promise<TunnelBenchResult> {
  const bytes = options.bytes ?? 2 ** 30;
  const runs = options.runs ?? 3;
  const progress = options.progress ?? (() => undefined);
  // At 20 MB/s a stream would still finish; anything slower is a broken path.
  const timeoutMs = 60_000 + (bytes / 20e6) * 1000;

  const lab = await Lab.start({ redis: false, hosts: [{ name: 'source' }, { name: 'target' }] });
  const endpoints = await StreamEndpoints.start();
  const opened: OpenPath[] = [];
  try {
    // ferry's relay opens before the OpenSSH relay, which takes over its cipher.
    const selected = options.paths ?? tunnelPathIds;
    for (const id of openingOrder) {
      if (selected.includes(id)) opened.push(await openPath(id, lab, endpoints.receiverPort, opened));
    }

    const figures = new Map<TunnelPathId, TunnelRun[]>(tunnelPathIds.map((id) => [id, []]));
    for (let round = 1; round <= runs; round += 1) {
      // Each round starts one path later, so that no path always follows the same one.
      const shift = (round - 1) % opened.length;
      for (const path of [...opened.slice(shift), ...opened.slice(0, shift)]) {
        const cpuBefore = snapshotCpu(path.cpuTrees, path.cpuSingles);
        const bastionBefore = snapshotCpu([], path.cpuSingles);
        const stream = await endpoints.stream(path.port, bytes, timeoutMs);
        const tunnelCpuSeconds = cpuSecondsBetween(cpuBefore, snapshotCpu(path.cpuTrees, path.cpuSingles));
        const bastionCpuSeconds = cpuSecondsBetween(bastionBefore, snapshotCpu([], path.cpuSingles));
        const run: TunnelRun = {
          mbPerSecond: bytes / 1e6 / stream.seconds,
          seconds: stream.seconds,
          tunnelCpuSeconds,
          bastionCpuSeconds,
          endpointCpuSeconds: stream.endpointCpuSeconds,
        };
        figures.get(path.id)?.push(run);
        progress(`tunnels: round ${round}/${runs} ${path.id}: ${run.mbPerSecond.toFixed(0)} MB/s`);
      }
    }

    const gib = bytes / 2 ** 30;
    return {
      bytes,
      runsPerPath: runs,
      paths: tunnelPathIds.flatMap((id) => {
        const path = opened.find((candidate) => candidate.id === id);
        if (path === undefined) return [];
        const pathRuns = figures.get(path.id) ?? [];
        const result: TunnelPathResult = {
          id: path.id,
          label: labels[path.id],
          cipher: path.cipher,
          reference: references[path.id],
          runs: pathRuns,
          mbPerSecond: median(pathRuns.map((run) => run.mbPerSecond)),
          tunnelCpuSecondsPerGiB: median(pathRuns.map((run) => run.tunnelCpuSeconds / gib)),
          bastionCpuSecondsPerGiB: median(pathRuns.map((run) => run.bastionCpuSeconds / gib)),
          endpointCpuSecondsPerGiB: median(pathRuns.map((run) => run.endpointCpuSeconds / gib)),
        };
        return [result];
      }),
    };
  } finally {
    for (const path of opened.reverse()) await path.close().catch(() => undefined);
    await endpoints.stop();
    await lab.stop();
  }
}

/** Sets up one path to the receiver; `earlier` contains the paths opened before it. */
async function openPath(
  id: TunnelPathId,
  lab: Lab,
  receiverPort: number,
  earlier: OpenPath[],
): Promise<OpenPath> {
  const inventory = loadInventory(lab.inventoryPath);
  const source = lab.host('source');
  const target = lab.host('target');
  const sshdPids = [source.sshd.pid, target.sshd.pid].filter((pid): pid is number => pid !== undefined);
  const hop = (host: typeof source): OpenSshHop => ({
    address: host.address,
    port: host.sshPort,
    user: lab.account.user,
    identityFile: lab.bastionKey.privatePath,
    // The lab writes every host's key into each host's known_hosts.
    knownHostsFile: `${host.stateDir}/ssh/known_hosts`,
  });
  const toReceiver = (ciphers?: string): Promise<OpenSshForward & { port: number }> =>
    onFreePort((port) =>
      startOpenSshForward({
        hop: hop(target),
        direction: '-L',
        forward: `127.0.0.1:${port}:127.0.0.1:${receiverPort}`,
        ...(ciphers === undefined ? {} : { ciphers }),
      }),
    );

  switch (id) {
    case 'tcp':
      return {
        id,
        port: receiverPort,
        cipher: undefined,
        cpuTrees: [],
        cpuSingles: [],
        close: async () => undefined,
      };
    case 'openssh-recipe':
    case 'openssh-gcm': {
      const forward = await toReceiver(id === 'openssh-gcm' ? 'aes128-gcm@openssh.com' : undefined);
      return {
        id,
        port: forward.port,
        cipher: forward.cipher,
        cpuTrees: [forward.pid, ...sshdPids],
        cpuSingles: [],
        close: () => forward.close(),
      };
    }
    case 'ferry-relay': {
      const sourceConnection = await SshConnection.connect(inventory.host('source'));
      const targetConnection = await SshConnection.connect(inventory.host('target'));
      let tunnel: RelayTunnel | undefined;
      try {
        tunnel = await openRelayTunnel(sourceConnection, targetConnection, {
          host: '127.0.0.1',
          port: receiverPort,
        });
      } catch (error) {
        await Promise.all([sourceConnection.close(), targetConnection.close()]);
        throw error;
      }
      const relay = tunnel;
      return {
        id,
        port: relay.port,
        // The stream enters on the source connection and leaves on the target connection.
        cipher: targetConnection.cipher,
        cpuTrees: sshdPids,
        cpuSingles: [process.pid],
        close: async () => {
          await relay.close();
          await Promise.all([sourceConnection.close(), targetConnection.close()]);
        },
      };
    }
    case 'openssh-two-hop': {
      // The same cipher as ferry's relay, so that the two relays compare like for like.
      const ferryCipher = earlier.find((path) => path.id === 'ferry-relay')?.cipher ?? ssh2CipherOrder()?.[0];
      const toTarget = await toReceiver(ferryCipher);
      let fromSource: OpenSshForward & { port: number };
      try {
        fromSource = await onFreePort((port) =>
          startOpenSshForward({
            hop: hop(source),
            direction: '-R',
            forward: `127.0.0.1:${port}:127.0.0.1:${toTarget.port}`,
            ...(ferryCipher === undefined ? {} : { ciphers: ferryCipher }),
          }),
        );
      } catch (error) {
        await toTarget.close();
        throw error;
      }
      return {
        id,
        port: fromSource.port,
        cipher: toTarget.cipher,
        cpuTrees: sshdPids,
        cpuSingles: [fromSource.pid, toTarget.pid],
        close: async () => {
          await fromSource.close();
          await toTarget.close();
        },
      };
    }
    case 'ferry-direct': {
      const host = inventory.host('source');
      const connection = await SshConnection.connect(host);
      let tunnel: DirectTunnel;
      try {
        tunnel = await openDirectTunnel(connection, {
          sshPath: host.commands.ssh,
          identityFile: host.direct?.identityFile ?? '',
          knownHostsFile: host.direct?.knownHostsFile ?? '',
          targetAddress: target.address,
          targetSshPort: target.sshPort,
          targetUser: lab.account.user,
          remotePort: receiverPort,
        });
      } catch (error) {
        await connection.close();
        throw error;
      }
      return {
        id,
        port: tunnel.port,
        cipher: tunnel.cipher,
        cpuTrees: sshdPids,
        cpuSingles: [process.pid],
        close: async () => {
          await tunnel.close();
          await connection.close();
        },
      };
    }
  }
}

/**
 * Runs `start` with a port that was free a moment ago, and with another one when it fails:
 * other processes on the machine can take the port in between.
 */
async function onFreePort<T extends object>(
  start: (port: number) => Promise<T>,
): Promise<T & { port: number }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await findFreePort();
    try {
      return Object.assign(await start(port), { port });
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

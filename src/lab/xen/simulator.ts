/**
 * The lab's simulated Xen: one xend per lab host, all inside the calling Node process.
 *
 * Each host listens for relocation on its own loopback address and, with the default
 * `(xend-relocation-address '')`, on 127.0.0.1 too, where an SSH tunnel's far end arrives.
 * Its generated bash `xm` reaches the simulator through one control server on 127.0.0.1.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlServer, type ControlServer } from './control.js';
import { LabHost } from './host.js';
import { RelocationLedger } from './ledger.js';
import type { MigrationEnvironment } from './outgoing.js';
import { SocketSet } from './sockets.js';
import type { SimHost, XenSimulator, XenSimulatorOptions } from './types.js';

export type {
  DomainSpec,
  DomainView,
  SimHost,
  SimHostSpec,
  VifSpec,
  XenSimulator,
  XenSimulatorOptions,
  XmResult,
} from './types.js';

const DEFAULT_BYTES_PER_MIB = 1024 * 1024;
// Upper bound on how long stop() waits for running xm commands after destroying their sockets.
const STOP_GRACE_MS = 10_000;

const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9.-]*$/;
const LOOPBACK_ADDRESS = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

function validateOptions(options: XenSimulatorOptions): void {
  const names = new Set<string>();
  const addresses = new Set<string>();
  const folders = new Set<string>();
  for (const spec of options.hosts) {
    if (!HOST_NAME.test(spec.name)) {
      throw new Error(`Invalid lab host name '${spec.name}': use letters, digits, dots and dashes.`);
    }
    if (!LOOPBACK_ADDRESS.test(spec.address)) {
      throw new Error(`Invalid address '${spec.address}' for lab host '${spec.name}': expected 127.x.y.z.`);
    }
    if (names.has(spec.name)) throw new Error(`Lab host '${spec.name}' is listed twice.`);
    if (addresses.has(spec.address)) throw new Error(`Lab address ${spec.address} is given to two hosts.`);
    if (folders.has(spec.stateDir)) throw new Error(`Lab hosts share the state folder ${spec.stateDir}.`);
    names.add(spec.name);
    addresses.add(spec.address);
    folders.add(spec.stateDir);

    const known = options.names.resolve(spec.name);
    if (known !== undefined && known !== spec.address) {
      throw new Error(
        `Lab host '${spec.name}' has address ${spec.address} but the names table maps it to ${known}.`,
      );
    }
  }
  const bytesPerMiB = options.bytesPerMiB;
  if (bytesPerMiB !== undefined && !(Number.isInteger(bytesPerMiB) && bytesPerMiB > 0)) {
    throw new Error(`Invalid bytesPerMiB ${bytesPerMiB}: expected a whole number of bytes above 0.`);
  }
}

/**
 * Starts a simulated xend for every host: writes each host's xend-config.sxp, state.json,
 * xend.log and bin/xm, and opens the relocation listeners and the xm control server. On any
 * failure everything opened so far is closed again before the error is thrown.
 */
export async function startXenSimulator(options: XenSimulatorOptions): Promise<XenSimulator> {
  validateOptions(options);
  const log = options.logger ?? (() => undefined);
  const sockets = new SocketSet();
  const abort = new AbortController();
  const hosts = new Map<string, LabHost>();

  for (const spec of options.hosts) {
    if (options.names.resolve(spec.name) === undefined) options.names.add(spec.name, spec.address);
  }

  const env: MigrationEnvironment = {
    names: options.names,
    ledger: new RelocationLedger(),
    transfers: options.transfers,
    sockets,
    bytesPerMiB: options.bytesPerMiB ?? DEFAULT_BYTES_PER_MIB,
    signal: abort.signal,
    identifyHost: (address, port) =>
      [...hosts.values()].find(
        (host) => host.relocationPort === port && (host.address === address || address === '127.0.0.1'),
      )?.name,
  };

  const control: ControlServer = await startControlServer(
    (hostName, args) => hosts.get(hostName)?.run(args),
    sockets,
    log,
  );

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      abort.abort();
      const closing = [control.close(), ...[...hosts.values()].map((host) => host.closeListeners())];
      sockets.destroyAll();
      await Promise.all(closing);
      sockets.destroyAll();
      const finished = Promise.all([...hosts.values()].map((host) => host.finish()));
      const late = await Promise.race([
        finished.then(() => false),
        sleep(STOP_GRACE_MS, true, { ref: false }),
      ]);
      if (late) log(`xen simulator: commands still running ${STOP_GRACE_MS} ms after stop; leaving them.`);
      log('xen simulator: stopped.');
    })();
    return stopping;
  };

  try {
    for (const spec of options.hosts) {
      const host = await LabHost.start(spec, env, control.port, log);
      hosts.set(spec.name, host);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  log(`xen simulator: ${hosts.size} host(s) started; xm control server on 127.0.0.1:${control.port}.`);

  return {
    controlPort: control.port,
    host(name: string): SimHost {
      const host = hosts.get(name);
      if (host === undefined) {
        const known = [...hosts.keys()].join(', ');
        throw new Error(`The Xen simulator has no host named '${name}'; its hosts are: ${known}.`);
      }
      return host;
    },
    hosts: () => [...hosts.values()],
    stop,
  };
}

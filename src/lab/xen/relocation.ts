import { createServer, type Server, type Socket } from 'node:net';
import type { NamesTable } from '../names.js';
import type { RelocationLedger } from './ledger.js';
import { closeServer, listenOn, type SocketSet } from './sockets.js';
import type { XendRelocationConfig } from './sxp.js';
import type { XendLogger } from './xend-log.js';

const LOOPBACK = '127.0.0.1';

/**
 * Returns the addresses that xend's relocation server binds for `configured`. In the lab every
 * host has two interfaces, its own loopback address and the shared 127.0.0.1, so '' (or
 * 0.0.0.0) binds both. Throws when the address is not one of the host's, as bind() would.
 */
export function relocationListenAddresses(
  configured: string,
  hostAddress: string,
  names: NamesTable,
): string[] {
  if (configured === '' || configured === '0.0.0.0') return [...new Set([hostAddress, LOOPBACK])];
  const resolved = names.resolve(configured);
  if (resolved === undefined) {
    throw new Error(`xend-relocation-address '${configured}' does not resolve in the lab's names table.`);
  }
  if (resolved !== hostAddress && resolved !== LOOPBACK) {
    throw new Error(
      `xend-relocation-address '${configured}' (${resolved}) is not an address of this host: ` +
        `use '', 'localhost' or '${hostAddress}'.`,
    );
  }
  return [resolved];
}

/**
 * Compiles allow-list regex texts the way xend uses them: each must match at the start of the
 * peer's IP address or name (Python's re.match), but may match only a prefix.
 */
export function compileHostsAllow(patterns: readonly string[]): RegExp[] {
  return patterns.map((pattern) => new RegExp(`^(?:${pattern})`));
}

/** Applies xend's allow list: an empty list allows every peer, otherwise its IP or name must match. */
export function isPeerAllowed(allow: readonly RegExp[], ip: string, name: string | undefined): boolean {
  if (allow.length === 0) return true;
  return allow.some((pattern) => pattern.test(ip) || (name !== undefined && pattern.test(name)));
}

export interface RelocationServerOptions {
  hostName: string;
  hostAddress: string;
  names: NamesTable;
  sockets: SocketSet;
  ledger: RelocationLedger;
  log: XendLogger;
  /** Receives each connection that passed the allow list. */
  onAccepted: (socket: Socket, peerAddress: string) => void;
}

/** The relocation listeners of one simulated xend. */
export class RelocationServer {
  #servers: Server[] = [];

  constructor(private readonly options: RelocationServerOptions) {}

  /** Closes the current listeners and opens the ones configured in `config`. */
  async apply(config: XendRelocationConfig): Promise<void> {
    await this.close();
    const { hostName, hostAddress, names, log } = this.options;
    if (!config.server) {
      log('INFO', 'relocation', 'Relocation server disabled (xend-relocation-server no).');
      return;
    }

    const addresses = relocationListenAddresses(config.address, hostAddress, names);
    const allow = compileHostsAllow(config.hostsAllow);
    for (const address of addresses) {
      const server = createServer((socket) => this.#accept(socket, allow));
      try {
        await listenOn(server, address, config.port);
      } catch (error) {
        await this.close();
        const reason = error instanceof Error ? error.message : String(error);
        log('ERROR', 'relocation', `Unable to listen on ${address}:${config.port}: ${reason}`);
        throw new Error(
          `Lab host '${hostName}' cannot open its relocation port ${address}:${config.port} (${reason}); ` +
            'choose a port that no other host or program uses.',
          { cause: error },
        );
      }
      this.#servers.push(server);
    }
    log(
      'INFO',
      'relocation',
      `Relocation server listening on ${addresses.join(' and ')}, port ${config.port}.`,
    );
  }

  async close(): Promise<void> {
    const servers = this.#servers;
    this.#servers = [];
    await Promise.all(servers.map((server) => closeServer(server)));
  }

  #accept(socket: Socket, allow: readonly RegExp[]): void {
    const { hostName, names, sockets, ledger, log, onAccepted } = this.options;
    sockets.track(socket);
    socket.on('error', () => undefined);

    const ip = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const name = names.reverse(ip);
    if (!isPeerAllowed(allow, ip, name)) {
      log('WARNING', 'relocation', `Rejected connection from ${ip} (${name ?? ip}).`);
      ledger.recordRejection(`${ip}:${socket.remotePort ?? 0}`, hostName);
      socket.destroy();
      return;
    }
    log('DEBUG', 'relocation', `Accepted relocation connection from ${ip} (${name ?? ip}).`);
    onAccepted(socket, ip);
  }
}

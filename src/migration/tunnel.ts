import type { HostConfig } from '../config/inventory.js';
import { FerryError } from '../errors.js';
import type { SshConnection } from '../ssh/connection.js';
import { openDirectTunnel } from '../ssh/direct.js';
import { openRelayTunnel } from '../ssh/relay.js';
import type { TunnelMode } from '../types.js';

/** A tunnel of either mode, as a migration attempt uses it. */
export interface OpenTunnel {
  /** Port on the source's loopback that leads to the target. */
  port: number;
  /** Bytes carried towards the target, when the tunnel passes the bastion (relay mode). */
  bytes(): number | undefined;
  lastError(): FerryError | undefined;
  close(): Promise<void>;
}

/** Opens a tunnel from the source's loopback to `targetPort` on the target's loopback. */
export async function openTunnel(
  mode: TunnelMode,
  sourceConnection: SshConnection,
  targetConnection: SshConnection,
  source: HostConfig,
  target: HostConfig,
  targetPort: number,
): Promise<OpenTunnel> {
  if (mode === 'relay') {
    const relay = await openRelayTunnel(sourceConnection, targetConnection, {
      host: '127.0.0.1',
      port: targetPort,
    });
    return {
      port: relay.port,
      bytes: () => relay.bytesForward,
      lastError: () => relay.lastError,
      close: () => relay.close(),
    };
  }
  if (source.direct === undefined) {
    throw new FerryError(
      'INVALID_INVENTORY',
      `Host ${source.name} has no 'direct' section, so it cannot open direct-mode tunnels. Add direct.identityFile and direct.knownHostsFile, or use --tunnel relay.`,
      { context: { host: source.name } },
    );
  }
  const direct = await openDirectTunnel(sourceConnection, {
    sshPath: source.commands.ssh,
    identityFile: source.direct.identityFile,
    knownHostsFile: source.direct.knownHostsFile,
    targetAddress: target.address,
    targetSshPort: target.port,
    targetUser: target.user,
    remotePort: targetPort,
    ...(source.direct.localPorts === undefined ? {} : { localPortRange: source.direct.localPorts }),
  });
  return {
    port: direct.port,
    bytes: () => undefined,
    lastError: () => direct.lastError,
    close: () => direct.close(),
  };
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadInventory, type Inventory } from '../../../src/config/inventory.js';
import { Lab } from '../../../src/lab/lab.js';
import { localCpuHasAes } from '../../../src/ssh/ciphers.js';
import { SshConnection } from '../../../src/ssh/connection.js';
import { openDirectTunnel } from '../../../src/ssh/direct.js';
import { startHashingServer } from './tcp-peers.js';

let lab: Lab;
let inventory: Inventory;

beforeAll(async () => {
  lab = await Lab.start({ redis: false });
  inventory = loadInventory(lab.inventoryPath);
});

afterAll(async () => {
  await lab?.stop();
});

// OpenSSH's sshd offers AES-GCM, so the client's order alone decides the cipher.
const expected = localCpuHasAes() === true ? 'aes128-gcm@openssh.com' : undefined;

describe('negotiated cipher', () => {
  it.runIf(expected !== undefined)('is AES-GCM on ssh2 connections', async () => {
    const connection = await SshConnection.connect(inventory.host('xen-a'));
    try {
      expect(connection.cipher).toBe(expected);
    } finally {
      await connection.close();
    }
  });

  it('is AES-GCM in direct tunnels', async () => {
    const source = inventory.host('xen-a');
    const target = inventory.host('xen-b');
    const server = await startHashingServer();
    const connection = await SshConnection.connect(source);
    try {
      const tunnel = await openDirectTunnel(connection, {
        sshPath: source.commands.ssh,
        identityFile: source.direct?.identityFile ?? '',
        knownHostsFile: source.direct?.knownHostsFile ?? '',
        targetAddress: target.address,
        targetSshPort: target.port,
        targetUser: target.user,
        remotePort: server.port,
      });
      try {
        expect(tunnel.cipher).toBe('aes128-gcm@openssh.com');
      } finally {
        await tunnel.close();
      }
    } finally {
      await connection.close();
      await server.close();
    }
  });
});

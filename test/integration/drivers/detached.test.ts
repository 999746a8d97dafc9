import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadInventory, type HostConfig } from '../../../src/config/inventory.js';
import { inspectDetached, waitDetached } from '../../../src/drivers/detached.js';
import { Lab } from '../../../src/lab/lab.js';
import { shellFor } from '../../../src/migration/run.js';
import { SshConnection } from '../../../src/ssh/connection.js';

let lab: Lab;
let host: HostConfig;
let connection: SshConnection;

beforeAll(async () => {
  lab = await Lab.start({ redis: false, hosts: [{ name: 'xen-a' }] });
  host = loadInventory(lab.inventoryPath).host('xen-a');
  connection = await SshConnection.connect(host);
});

afterAll(async () => {
  await connection?.close();
  await lab?.stop();
});

describe('detached command', () => {
  // An ended command stays a zombie until init reaps it, and `kill -0` still finds a zombie.
  // A live process under the recorded pid takes the place of such a zombie here.
  it('counts as ended once its exit file exists', async () => {
    const dir = `${host.workDir}/ended-but-unreaped`;
    const setup = await connection.exec([
      'sh',
      '-c',
      'mkdir -p -- "$1" && cd -- "$1" && { setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $! >pid; } && echo 0 >exit',
      'setup',
      dir,
    ]);
    expect(setup.code).toBe(0);
    const shell = shellFor(connection, host);

    expect(await inspectDetached(shell, dir)).toBe('exited');
    // Before the fix this wait lasted as long as the process under the pid: past its timeout.
    const exit = await waitDetached(shell, dir, { timeoutMs: 10_000 });
    expect(exit.code).toBe(0);

    await connection.exec(['sh', '-c', 'kill "$(cat -- "$1/pid")"', 'cleanup', dir]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isAlive, signal } from '../../../src/lab/processes.js';
import type { MigrationProgress } from '../../../src/types.js';
import {
  directTunnelClients,
  expectCounterCarriedOn,
  migrate,
  qemuOf,
  startQemuLab,
  waitForMoreTicks,
  waitUntil,
  type QemuLab,
} from './qemu-lab.js';

const mebibyte = 1024 * 1024;
const guest = { memoryMiB: 64, workingSetMiB: 4 };

describe('QEMU live migration through ferry', () => {
  let setup: QemuLab;

  beforeAll(async () => {
    setup = await startQemuLab(
      [
        // 64 MiB at 48 MiB/s: over a second of transfer, long enough to act mid-transfer.
        { name: 'kvm-a', qemu: { maxBandwidthMiBps: 48 } },
        { name: 'kvm-b', qemu: {} },
      ],
      `qemu-e2e-${process.pid}`,
    );
  });

  afterAll(async () => {
    await setup?.close();
  });

  it('moves a running VM through a relay tunnel', async () => {
    const source = qemuOf(setup.lab, 'kvm-a');
    const target = qemuOf(setup.lab, 'kvm-b');
    source.startVm({ name: 'relay01', ...guest });
    await waitForMoreTicks(source, 'relay01', 3);

    const progress: MigrationProgress[] = [];
    const result = await migrate(setup, { vm: 'relay01', source: 'kvm-a', target: 'kvm-b' }, (report) =>
      progress.push(report),
    );

    expect(result.status).toBe('completed');
    expect(result.tunnel).toBe('relay');
    expect(result.attempts).toBe(1);
    expect(result.bytes).toBeGreaterThan(60 * mebibyte);
    expect(result.downtimeMs).toBeGreaterThanOrEqual(0);
    expect(result.downtimeMs).toBeLessThan(5000);
    expect(result.observed).toEqual([
      { host: 'kvm-a', state: 'absent', detail: expect.stringMatching(/^postmigrate/) as unknown },
      { host: 'kvm-b', state: 'running', detail: 'running' },
    ]);
    const fromQemu = progress.find((report) => report.remainingBytes !== undefined);
    expect(fromQemu?.totalBytes).toBeGreaterThan(60 * mebibyte);
    expect(fromQemu?.expectedDowntimeMs).toBeGreaterThan(0);
    expect(await source.status('relay01')).toBe('postmigrate');
    expect(await target.status('relay01')).toBe('running');

    await waitForMoreTicks(target, 'relay01', 5);
    expectCounterCarriedOn(source.ticks('relay01'), target.ticks('relay01'));
    await source.stopVm('relay01');
    await target.stopVm('relay01');
  });

  it('moves a running VM through a direct tunnel', async () => {
    const source = qemuOf(setup.lab, 'kvm-a');
    const target = qemuOf(setup.lab, 'kvm-b');
    source.startVm({ name: 'direct01', ...guest });
    await waitForMoreTicks(source, 'direct01', 3);

    const result = await migrate(setup, {
      vm: 'direct01',
      source: 'kvm-a',
      target: 'kvm-b',
      options: { tunnel: 'direct' },
    });

    expect(result.status).toBe('completed');
    expect(result.tunnel).toBe('direct');
    // The stream does not pass the bastion: the bytes are QEMU's own count.
    expect(result.bytes).toBeGreaterThan(60 * mebibyte);
    expect(result.downtimeMs).toBeGreaterThanOrEqual(0);
    expect(await source.status('direct01')).toBe('postmigrate');
    expect(await target.status('direct01')).toBe('running');
    expect(directTunnelClients(setup.lab)).toEqual([]);

    await waitForMoreTicks(target, 'direct01', 5);
    expectCounterCarriedOn(source.ticks('direct01'), target.ticks('direct01'));
    await source.stopVm('direct01');
    await target.stopVm('direct01');
  });

  it('retries after the tunnel is cut mid-transfer', async () => {
    const source = qemuOf(setup.lab, 'kvm-a');
    const target = qemuOf(setup.lab, 'kvm-b');
    source.startVm({ name: 'cut01', ...guest });
    await waitForMoreTicks(source, 'cut01', 3);

    let cutAtTick: number | undefined;
    const cut = (report: MigrationProgress): void => {
      const midTransfer = report.phase === 'migrate' && (report.bytes ?? 0) >= 16 * mebibyte;
      if (cutAtTick !== undefined || !midTransfer) return;
      const clients = directTunnelClients(setup.lab);
      expect(clients).toHaveLength(1);
      cutAtTick = source.ticks('cut01').at(-1);
      for (const pid of clients) signal(pid, 'SIGKILL');
    };
    const result = await migrate(
      setup,
      { vm: 'cut01', source: 'kvm-a', target: 'kvm-b', options: { tunnel: 'direct', attempts: 3 } },
      cut,
    );

    expect(cutAtTick).toBeDefined();
    expect(result.status).toBe('completed');
    expect(result.attempts).toBe(2);
    // The VM kept running on the source between the cut and the second attempt.
    const sourceTicks = source.ticks('cut01');
    expect(sourceTicks.at(-1)).toBeGreaterThan(cutAtTick as number);
    expect(await source.status('cut01')).toBe('postmigrate');
    expect(await target.status('cut01')).toBe('running');

    await waitForMoreTicks(target, 'cut01', 5);
    expectCounterCarriedOn(sourceTicks, target.ticks('cut01'));
    await source.stopVm('cut01');
    await target.stopVm('cut01');
    await waitUntil('the guests to stop', () => source.pidOf('cut01') === undefined);
    expect(directTunnelClients(setup.lab).filter(isAlive)).toEqual([]);
  });
});

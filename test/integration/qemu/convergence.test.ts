import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { cancelMigration } from '../../../src/jobs/cancel.js';
import { signal } from '../../../src/lab/processes.js';
import type { MigrationProgress } from '../../../src/types.js';
import {
  directTunnelClients,
  expectCounterCarriedOn,
  migrate,
  qemuOf,
  startQemuLab,
  waitForMoreTicks,
  type QemuLab,
} from './qemu-lab.js';

const mebibyte = 1024 * 1024;

// A 24 MiB working set rewritten every millisecond, sent at 32 MiB/s, leaves about 750 ms of
// dirty memory at every pass: far more than a 100 ms downtime limit allows, less than 1500 ms.
const busyGuest = { memoryMiB: 64, workingSetMiB: 24 };
const convergence = {
  maxBandwidthMiBps: 32,
  downtimeLimitMs: 100,
  downtimeSteps: 3,
  passesPerDowntimeStep: 2,
};

describe('QEMU migration watchdog and convergence', () => {
  let setup: QemuLab;

  beforeAll(async () => {
    setup = await startQemuLab(
      [
        { name: 'kvm-a', qemu: { maxBandwidthMiBps: 48, stallTimeoutMs: 3000 } },
        { name: 'kvm-b', qemu: {} },
        // Raises the limit to 567, 1033, then 1500 ms.
        { name: 'kvm-c', qemu: { ...convergence, maxDowntimeLimitMs: 1500 } },
        // Raises the limit to 167, 233, then 300 ms, which is never enough.
        { name: 'kvm-d', qemu: { ...convergence, maxDowntimeLimitMs: 300 } },
      ],
      `qemu-convergence-${process.pid}`,
    );
  });

  afterAll(async () => {
    await setup?.close();
  });

  it('cancels a stalled migration and keeps the VM on the source', async () => {
    const source = qemuOf(setup.lab, 'kvm-a');
    const target = qemuOf(setup.lab, 'kvm-b');
    source.startVm({ name: 'stall01', memoryMiB: 64, workingSetMiB: 4 });
    await waitForMoreTicks(source, 'stall01', 3);

    // Stopping the direct tunnel's ssh halts the stream without closing it.
    let stopped: number[] = [];
    const stall = (report: MigrationProgress): void => {
      const midTransfer = report.phase === 'migrate' && (report.bytes ?? 0) >= 16 * mebibyte;
      if (stopped.length > 0 || !midTransfer) return;
      stopped = directTunnelClients(setup.lab);
      for (const pid of stopped) signal(pid, 'SIGSTOP');
    };
    const started = Date.now();
    const result = await migrate(
      setup,
      { vm: 'stall01', source: 'kvm-a', target: 'kvm-b', options: { tunnel: 'direct', attempts: 1 } },
      stall,
    );
    for (const pid of stopped) signal(pid, 'SIGCONT');

    expect(stopped).toHaveLength(1);
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('MIGRATION_STALLED');
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await source.status('stall01')).toBe('running');
    expect(await target.status('stall01')).toBe('absent');
    await waitForMoreTicks(source, 'stall01', 3);
    expect(directTunnelClients(setup.lab)).toEqual([]);
    await source.stopVm('stall01');
  });

  it('cancels a running migration on request', async () => {
    const source = qemuOf(setup.lab, 'kvm-a');
    const target = qemuOf(setup.lab, 'kvm-b');
    source.startVm({ name: 'cancel01', memoryMiB: 64, workingSetMiB: 4 });
    await waitForMoreTicks(source, 'cancel01', 3);

    let cancel: Promise<unknown> | undefined;
    const result = await migrate(
      setup,
      { vm: 'cancel01', source: 'kvm-a', target: 'kvm-b' },
      (report, status) => {
        const midTransfer = report.phase === 'migrate' && (report.bytes ?? 0) >= 8 * mebibyte;
        if (cancel === undefined && midTransfer) {
          cancel = cancelMigration(setup.queue, status.jobId, 'qemu-test');
        }
      },
    );

    expect(await cancel).toMatchObject({ outcome: 'cancelling' });
    expect(result.status).toBe('cancelled');
    expect(result.observed).toEqual([
      { host: 'kvm-a', state: 'running', detail: 'running' },
      { host: 'kvm-b', state: 'absent' },
    ]);
    expect(await source.status('cancel01')).toBe('running');
    expect(await target.status('cancel01')).toBe('absent');
    await waitForMoreTicks(source, 'cancel01', 3);
    await source.stopVm('cancel01');
  });

  it('completes a busy VM by raising the downtime limit', async () => {
    const source = qemuOf(setup.lab, 'kvm-c');
    const target = qemuOf(setup.lab, 'kvm-b');
    source.startVm({ name: 'busy01', ...busyGuest });
    await waitForMoreTicks(source, 'busy01', 3);

    const limits = new Set<number>();
    const result = await migrate(setup, { vm: 'busy01', source: 'kvm-c', target: 'kvm-b' }, (report) => {
      if (report.downtimeLimitMs !== undefined) limits.add(report.downtimeLimitMs);
    });

    expect(result.status).toBe('completed');
    expect(result.attempts).toBe(1);
    expect(result.downtimeMs).toBeGreaterThanOrEqual(0);
    // Dirty memory was sent again at every pass, so more than the guest's RAM went through.
    expect(result.bytes).toBeGreaterThan(80 * mebibyte);
    expect(Math.max(...limits)).toBeGreaterThan(100);
    expect(Math.max(...limits)).toBeLessThanOrEqual(1500);
    expect(await source.status('busy01')).toBe('postmigrate');
    expect(await target.status('busy01')).toBe('running');

    await waitForMoreTicks(target, 'busy01', 5);
    expectCounterCarriedOn(source.ticks('busy01'), target.ticks('busy01'));
    await source.stopVm('busy01');
    await target.stopVm('busy01');
  });

  it('fails cleanly when the maximum downtime is not enough', async () => {
    const source = qemuOf(setup.lab, 'kvm-d');
    const target = qemuOf(setup.lab, 'kvm-b');
    source.startVm({ name: 'busy02', ...busyGuest });
    await waitForMoreTicks(source, 'busy02', 3);

    const limits = new Set<number>();
    const result = await migrate(setup, { vm: 'busy02', source: 'kvm-d', target: 'kvm-b' }, (report) => {
      if (report.downtimeLimitMs !== undefined) limits.add(report.downtimeLimitMs);
    });

    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('MIGRATION_NOT_CONVERGING');
    expect(result.error?.message).toContain('300 ms');
    expect(result.attempts).toBe(1);
    expect(Math.max(...limits)).toBe(300);
    expect(result.observed).toEqual([
      { host: 'kvm-d', state: 'running', detail: 'running' },
      { host: 'kvm-b', state: 'absent' },
    ]);
    expect(await source.status('busy02')).toBe('running');
    expect(await target.status('busy02')).toBe('absent');
    await waitForMoreTicks(source, 'busy02', 3);
    await source.stopVm('busy02');
  });
});

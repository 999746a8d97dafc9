import { describe, expect, it } from 'vitest';

import type { FerryError } from '../../../src/errors.js';
import { LeaseKeeper, statusAfterLeaseLoss } from '../../../src/locks/lease.js';
import { compileLockOptions } from '../../../src/locks/options.js';
import type { LockStore, RenewReply } from '../../../src/locks/store.js';
import { Waiter } from '../../../src/locks/wait.js';
import { createLogger } from '../../../src/log.js';

const quiet = createLogger({ level: 'silent' });

function keeperWith(renew: () => Promise<RenewReply>): { keeper: LeaseKeeper; lost: Promise<FerryError> } {
  const store = { renew } as unknown as LockStore;
  let resolveLost: (error: FerryError) => void = () => undefined;
  const lost = new Promise<FerryError>((resolve) => {
    resolveLost = resolve;
  });
  const keeper = new LeaseKeeper(
    store,
    'job-1',
    'token',
    compileLockOptions({ leaseMs: 600 }),
    quiet,
    resolveLost,
    performance.now(),
  );
  return { keeper, lost };
}

describe('LeaseKeeper', () => {
  it('reports a lease that Redis says was taken over', async () => {
    const { keeper, lost } = keeperWith(async () => ({ renewed: false, reason: 'superseded', now: 0 }));
    keeper.start();
    const error = await lost;
    expect(error.code).toBe('LEASE_LOST');
    expect(error.message).toContain('superseded');
  });

  it('reports a lease it cannot renew within half of it', async () => {
    const { keeper, lost } = keeperWith(() => Promise.reject(new Error('Connection is closed.')));
    const started = performance.now();
    keeper.start();
    const error = await lost;
    expect(error.message).toContain('no renewal succeeded');
    // Half of the 600 ms lease, detected at the next renewal tick (every 100 ms).
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(performance.now() - started).toBeLessThan(600);
  });

  it('keeps a lease that renews', async () => {
    let renewals = 0;
    const { keeper, lost } = keeperWith(async () => {
      renewals += 1;
      return { renewed: true, now: 0, expiresAt: 600 };
    });
    keeper.start();
    const outcome = await Promise.race([lost, new Promise((resolve) => setTimeout(resolve, 700, 'kept'))]);
    keeper.stop();
    expect(outcome).toBe('kept');
    expect(renewals).toBeGreaterThanOrEqual(5);
  });
});

describe('statusAfterLeaseLoss', () => {
  it('is failed only when the VM is seen on the source alone', () => {
    const onSource = [
      { host: 'xen-a', state: 'running' },
      { host: 'xen-b', state: 'absent' },
    ];
    expect(statusAfterLeaseLoss(onSource, 'xen-a', 'xen-b')).toBe('failed');
    expect(statusAfterLeaseLoss(undefined, 'xen-a', 'xen-b')).toBe('needs-attention');
    expect(
      statusAfterLeaseLoss(
        [...onSource, { host: 'xen-a', state: 'migrating', detail: 'migrate command running' }],
        'xen-a',
        'xen-b',
      ),
    ).toBe('needs-attention');
    expect(
      statusAfterLeaseLoss(
        [
          { host: 'xen-a', state: 'absent' },
          { host: 'xen-b', state: 'paused' },
        ],
        'xen-a',
        'xen-b',
      ),
    ).toBe('needs-attention');
  });
});

describe('Waiter', () => {
  it('keeps a wake-up that arrives before the wait', async () => {
    const waiter = new Waiter();
    waiter.wake();
    expect(await waiter.wait(1_000, new AbortController().signal)).toBe('woken');
    expect(await waiter.wait(10, new AbortController().signal)).toBe('timeout');
  });

  it('keeps answering stopping once asked to stop', async () => {
    const waiter = new Waiter();
    waiter.wake('stopping');
    waiter.wake();
    expect(await waiter.wait(1_000, new AbortController().signal)).toBe('stopping');
    expect(await waiter.wait(1_000, new AbortController().signal)).toBe('stopping');
  });

  it('rejects with the abort reason', async () => {
    const waiter = new Waiter();
    const controller = new AbortController();
    const waiting = waiter.wait(10_000, controller.signal);
    controller.abort(new Error('cancelled'));
    await expect(waiting).rejects.toThrow('cancelled');
  });
});

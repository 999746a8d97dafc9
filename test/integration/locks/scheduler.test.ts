import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { WaitingError } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { isFerryError } from '../../../src/errors.js';
import { startRedis, type LabRedis } from '../../../src/lab/redis.js';
import { handovers, readLockEvents } from '../../../src/locks/events.js';
import type { LockManager } from '../../../src/locks/manager.js';
import { readLockSnapshot } from '../../../src/locks/snapshot.js';
import {
  HostUsage,
  fakeInventory,
  fakeJob,
  quantile,
  quietLogger,
  sleep,
  startManager,
} from './scheduler-helpers.js';

let redis: LabRedis;
let client: Redis;
const managers: LockManager[] = [];
let prefixCount = 0;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});

afterEach(async () => {
  for (const manager of managers.splice(0)) await manager.close();
});

afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

function nextPrefix(): string {
  prefixCount += 1;
  return `locks-${process.pid}-${prefixCount}`;
}

async function manager(
  prefix: string,
  hosts: string[],
  options: Parameters<typeof startManager>[3] & { limits?: Record<string, object> } = {},
): Promise<LockManager> {
  const { limits, ...rest } = options;
  const started = await startManager(redis.url, prefix, fakeInventory(hosts, limits), rest);
  managers.push(started);
  return started;
}

async function expectNoLocks(prefix: string): Promise<void> {
  const snapshot = await readLockSnapshot(client, prefix);
  expect(snapshot.hosts).toEqual([]);
}

describe('lock scheduler', () => {
  it('opposite and crossing jobs never deadlock', async () => {
    const prefix = nextPrefix();
    const hosts = ['a', 'b', 'c'];
    const bastions = await Promise.all([1, 2, 3].map(() => manager(prefix, hosts)));
    const pairs = [
      ['a', 'b'],
      ['b', 'a'],
      ['a', 'c'],
      ['c', 'a'],
      ['b', 'c'],
      ['c', 'b'],
    ] as const;
    const usage = new HostUsage();
    const jobs = Array.from({ length: 30 }, (_, index) => {
      const [source, target] = pairs[index % pairs.length] as readonly [string, string];
      return { job: fakeJob(`job-${index}`, `vm-${index}`, source, target), source, target, index };
    });

    await Promise.all(
      jobs.map(async ({ job, source, target, index }) => {
        const bastion = bastions[index % bastions.length] as LockManager;
        await bastion.acquire(job, new AbortController(), quietLogger);
        usage.enter(source, target);
        await sleep(15);
        usage.leave(source, target);
        await bastion.release(job.id);
      }),
    );

    for (const host of hosts) expect(usage.highest.get(host), `host ${host}`).toBe(1);
    await expectNoLocks(prefix);
  });

  it('freed slot wakes the waiter at once', async () => {
    const prefix = nextPrefix();
    // The default lease gives a 10 s heartbeat: only the grant message can wake the waiter in time.
    const first = await manager(prefix, ['a', 'b']);
    const second = await manager(prefix, ['a', 'b']);
    const holder = fakeJob('holder', 'vm-1', 'a', 'b');
    const waiter = fakeJob('waiter', 'vm-2', 'b', 'a');
    await first.acquire(holder, new AbortController(), quietLogger);

    let acquiredAt = 0;
    const waiting = second.acquire(waiter, new AbortController(), quietLogger).then(() => {
      acquiredAt = performance.now();
    });
    await sleep(300);
    expect(acquiredAt).toBe(0);

    const releasedAt = performance.now();
    await first.release(holder.id);
    await waiting;
    expect(acquiredAt - releasedAt).toBeLessThan(250);
    expect(waiter.handedBack).toBe(false);
    await second.release(waiter.id);
    await expectNoLocks(prefix);
  });

  it('oldest fitting waiter goes first', async () => {
    const prefix = nextPrefix();
    const bastion = await manager(prefix, ['a', 'b', 'c', 'd']);
    const order: string[] = [];
    const take = (id: string, source: string, target: string) => {
      const job = fakeJob(id, `vm-${id}`, source, target);
      const done = bastion.acquire(job, new AbortController(), quietLogger).then(() => order.push(id));
      return { job, done };
    };

    const holder = take('holder', 'a', 'b');
    await holder.done;
    const older = take('older', 'c', 'a'); // blocked by a
    await sleep(100);
    const passer = take('passer', 'c', 'd'); // c and d are free: passes the older job
    await passer.done;
    const newer = take('newer', 'd', 'a'); // blocked by d and a
    await sleep(100);
    expect(order).toEqual(['holder', 'passer']);

    await bastion.release('holder'); // a frees, but the older job still needs c
    await sleep(100);
    expect(order).toEqual(['holder', 'passer']);

    await bastion.release('passer'); // c and d free: the older job and the newer one both fit
    await older.done;
    await sleep(100);
    // The older job took a, so the newer one keeps waiting for it.
    expect(order).toEqual(['holder', 'passer', 'older']);
    await bastion.release('older');
    await newer.done;
    expect(order).toEqual(['holder', 'passer', 'older', 'newer']);
    await bastion.release('newer');
    await expectNoLocks(prefix);
  });

  it('global cap and directional limits', async () => {
    const prefix = nextPrefix();
    const bastion = await manager(prefix, ['a', 'b', 'c', 'd', 'e', 'f'], {
      maxMigrations: 2,
      limits: { a: { outgoing: 1, incoming: 1 } },
    });
    const results: string[] = [];
    const take = (id: string, source: string, target: string) =>
      bastion
        .acquire(fakeJob(id, `vm-${id}`, source, target), new AbortController(), quietLogger)
        .then(() => results.push(id));

    // a sends and receives at once when its directions are counted apart.
    await take('a-out', 'a', 'b');
    await take('a-in', 'c', 'a');
    const third = take('third', 'd', 'e'); // blocked by the global cap of 2
    await sleep(200);
    expect(results).toEqual(['a-out', 'a-in']);
    const snapshot = await readLockSnapshot(client, prefix);
    expect(snapshot.global).toEqual({ limits: [2], holders: expect.arrayContaining(['a-out', 'a-in']) });
    expect(snapshot.hosts.find((host) => host.host === 'a')?.pools).toEqual([
      { resource: 'host-in:a', direction: 'incoming', limits: [1], inUse: 1 },
      { resource: 'host-out:a', direction: 'outgoing', limits: [1], inUse: 1 },
    ]);

    await bastion.release('a-in');
    await third;
    await bastion.release('a-out');
    await bastion.release('third');
    await expectNoLocks(prefix);
  });

  it('ageing ends starvation', async () => {
    const ageingMs = 1_000;
    const holdMs = 300;
    const measure = async (ageing: number, patienceMs: number): Promise<number | undefined> => {
      const prefix = nextPrefix();
      const bastion = await manager(prefix, ['a', 'b', 'c', 'd'], { ageingMs: ageing });
      let stopped = false;
      let count = 0;
      // Two streams of newer jobs keep a and b busy in turns: a->c, and d->b half a job later.
      // Each next job enters before the current one leaves, so a freed slot always has a
      // newer taker that fits, while the older job a->b needs both at once.
      const stream = async (source: string, target: string, offsetMs: number): Promise<void> => {
        await sleep(offsetMs);
        let current = fakeJob(`${source}${target}-${count++}`, `vm-${count}`, source, target);
        await bastion.acquire(current, new AbortController(), quietLogger);
        while (!stopped) {
          const next = fakeJob(`${source}${target}-${count++}`, `vm-${count}`, source, target);
          const nextHeld = bastion.acquire(next, new AbortController(), quietLogger);
          await sleep(holdMs);
          await bastion.release(current.id);
          await nextHeld;
          current = next;
        }
        await bastion.release(current.id);
      };
      const streams = [stream('a', 'c', 0), stream('d', 'b', holdMs / 2)];
      await sleep(holdMs);

      const starved = fakeJob('starved', 'vm-starved', 'a', 'b');
      const controller = new AbortController();
      const enteredAt = performance.now();
      const acquired = bastion
        .acquire(starved, controller, quietLogger)
        .then(() => performance.now() - enteredAt)
        .catch(() => undefined);
      const waitedMs = await Promise.race([acquired, sleep(patienceMs).then(() => undefined)]);
      controller.abort(new Error('test over'));
      await acquired;
      await bastion.release(starved.id);
      stopped = true;
      await Promise.all(streams);
      await expectNoLocks(prefix);
      return waitedMs;
    };

    const withAgeing = await measure(ageingMs, 5_000);
    expect(withAgeing, 'started with ageing').toBeDefined();
    // Ageing threshold plus one job's length, with room for a loaded test machine.
    expect(withAgeing).toBeLessThan(ageingMs + holdMs + 500);

    const withoutAgeing = await measure(600_000, ageingMs + holdMs + 1_500);
    expect(withoutAgeing, 'starved without ageing').toBeUndefined();
  });

  it('max wait fails naming the host', async () => {
    const prefix = nextPrefix();
    const bastion = await manager(prefix, ['a', 'b'], { maxWaitMs: 400 });
    await bastion.acquire(fakeJob('holder', 'vm-1', 'a', 'b'), new AbortController(), quietLogger);
    const error = await bastion
      .acquire(fakeJob('late', 'vm-2', 'b', 'a'), new AbortController(), quietLogger)
      .then(() => undefined)
      .catch((thrown: unknown) => thrown);

    expect(isFerryError(error, 'SLOT_WAIT_TIMEOUT')).toBe(true);
    expect((error as Error).message).toMatch(/Waited \d+ ms to migrate 'vm-2' from b to a/);
    expect((error as Error).message).toContain('a and b stayed busy with other migrations');
    const snapshot = await readLockSnapshot(client, prefix);
    expect(snapshot.hosts.flatMap((host) => host.waiting)).toEqual([]);
    await bastion.release('holder');
    await expectNoLocks(prefix);
  });

  it('waits for unaccounted migrations', async () => {
    const prefix = nextPrefix();
    const inFlight = new Map<string, string[]>();
    const bastion = await manager(prefix, ['a', 'b', 'c'], {
      inFlightRecheckMs: 50,
      limits: { a: { migrations: 2 } },
      listInFlight: async (host) => inFlight.get(host.name) ?? [],
    });
    // A migration that a lock accounts for (VM busy, c -> a) is no reason to wait.
    await bastion.acquire(fakeJob('locked', 'busy', 'c', 'a'), new AbortController(), quietLogger);
    inFlight.set('a', ['busy (paused, possibly incoming)']);
    inFlight.set('b', ['migrating-stray (outgoing)']);

    const job = fakeJob('job', 'vm-1', 'a', 'b');
    let started = false;
    const acquiring = bastion.acquire(job, new AbortController(), quietLogger).then(() => {
      started = true;
    });
    await sleep(300);
    expect(started).toBe(false);
    inFlight.delete('b');
    await acquiring;
    await bastion.release(job.id);
    await bastion.release('locked');
    await expectNoLocks(prefix);
  });

  it('stray migration fails after max wait', async () => {
    const prefix = nextPrefix();
    const bastion = await manager(prefix, ['a', 'b'], {
      maxWaitMs: 300,
      inFlightRecheckMs: 50,
      listInFlight: async (host) => (host.name === 'b' ? ['stray (paused, possibly incoming)'] : []),
    });
    const job = fakeJob('job', 'vm-1', 'a', 'b');
    const error = await bastion
      .acquire(job, new AbortController(), quietLogger)
      .then(() => undefined)
      .catch((thrown: unknown) => thrown);
    expect(isFerryError(error, 'SLOT_WAIT_TIMEOUT')).toBe(true);
    expect((error as Error).message).toContain('b: stray (paused, possibly incoming)');
    // The job got its locks before the check, so the worker's release gives them back.
    await bastion.release(job.id);
    await expectNoLocks(prefix);
  });

  it('takeover reclaims locks at once', async () => {
    const prefix = nextPrefix();
    const dying = await manager(prefix, ['a', 'b'], { leaseMs: 60_000 });
    const taking = await manager(prefix, ['a', 'b'], { leaseMs: 60_000 });
    const oldRun = new AbortController();
    await dying.acquire(fakeJob('job', 'vm-1', 'a', 'b'), oldRun, quietLogger);

    const started = performance.now();
    await taking.acquire(fakeJob('job', 'vm-1', 'a', 'b'), new AbortController(), quietLogger);
    expect(performance.now() - started).toBeLessThan(1_000);
    const events = await readLockEvents(client, prefix);
    expect(events.filter((event) => event.type === 'reclaimed').map((event) => event.jobId)).toEqual(['job']);

    // The old owner's next renewal (every 10 s with this lease) finds its token replaced.
    await dying.release('job'); // a release with the old token changes nothing
    const snapshot = await readLockSnapshot(client, prefix);
    expect(snapshot.hosts.map((host) => host.holders.map((holder) => holder.jobId))).toEqual([
      ['job'],
      ['job'],
    ]);
    await taking.release('job');
    await expectNoLocks(prefix);
  });

  it('takeover aborts the old owner', async () => {
    const prefix = nextPrefix();
    const dying = await manager(prefix, ['a', 'b'], { leaseMs: 600 });
    const taking = await manager(prefix, ['a', 'b'], { leaseMs: 600 });
    const oldRun = new AbortController();
    await dying.acquire(fakeJob('job', 'vm-1', 'a', 'b'), oldRun, quietLogger);
    await taking.acquire(fakeJob('job', 'vm-1', 'a', 'b'), new AbortController(), quietLogger);
    await sleep(300);
    expect(oldRun.signal.aborted).toBe(true);
    expect(isFerryError(oldRun.signal.reason, 'LEASE_LOST')).toBe(true);
    await taking.release('job');
    await dying.release('job');
    await expectNoLocks(prefix);
  });

  it('unrenewed locks expire within the lease', async () => {
    const prefix = nextPrefix();
    const leaseMs = 1_200;
    const dying = await manager(prefix, ['a', 'b'], { leaseMs });
    const waiting = await manager(prefix, ['a', 'b'], { leaseMs });
    await dying.acquire(fakeJob('dead', 'vm-1', 'a', 'b'), new AbortController(), quietLogger);
    const lastRenewal = performance.now();
    await dying.close(); // stops renewing without releasing, as a killed worker would

    const job = fakeJob('next', 'vm-2', 'b', 'a');
    await waiting.acquire(job, new AbortController(), quietLogger);
    // Within the lease, plus one waiter heartbeat (a third of the lease) to notice the expiry.
    expect(performance.now() - lastRenewal).toBeLessThan(leaseMs + leaseMs / 3 + 300);
    const events = await readLockEvents(client, prefix);
    expect(events.some((event) => event.type === 'expired' && event.jobId === 'dead')).toBe(true);
    await waiting.release(job.id);
    await expectNoLocks(prefix);
  });

  it('cancel while waiting leaves the queue', async () => {
    const prefix = nextPrefix();
    const bastion = await manager(prefix, ['a', 'b']);
    await bastion.acquire(fakeJob('holder', 'vm-1', 'a', 'b'), new AbortController(), quietLogger);
    const controller = new AbortController();
    const waiting = bastion.acquire(fakeJob('waiter', 'vm-2', 'a', 'b'), controller, quietLogger);
    await sleep(100);
    controller.abort(new Error('cancelled by test'));
    await expect(waiting).rejects.toThrow('cancelled by test');
    const snapshot = await readLockSnapshot(client, prefix);
    expect(snapshot.hosts.flatMap((host) => host.waiting)).toEqual([]);
    await bastion.release('holder');
    await expectNoLocks(prefix);
  });

  it('stop hands waiting jobs back', async () => {
    const prefix = nextPrefix();
    const bastion = await manager(prefix, ['a', 'b']);
    await bastion.acquire(fakeJob('holder', 'vm-1', 'a', 'b'), new AbortController(), quietLogger);
    const waiter = fakeJob('waiter', 'vm-2', 'a', 'b');
    const waiting = bastion.acquire(waiter, new AbortController(), quietLogger);
    await sleep(100);
    bastion.stopWaiting();
    await expect(waiting).rejects.toBeInstanceOf(WaitingError);
    expect(waiter.handedBack).toBe(true);
    await bastion.release('holder');
    await expectNoLocks(prefix);
  });

  it('hand-over gap is recorded', async () => {
    const prefix = nextPrefix();
    const bastions = await Promise.all([1, 2].map(() => manager(prefix, ['a', 'b'])));
    const jobs = Array.from({ length: 30 }, (_, index) =>
      fakeJob(`job-${index}`, `vm-${index}`, index % 2 === 0 ? 'a' : 'b', index % 2 === 0 ? 'b' : 'a'),
    );
    await Promise.all(
      jobs.map(async (job, index) => {
        const bastion = bastions[index % 2] as LockManager;
        await bastion.acquire(job, new AbortController(), quietLogger);
        await sleep(10);
        await bastion.release(job.id);
      }),
    );
    const gaps = handovers(await readLockEvents(client, prefix)).map((handover) => handover.gapMs);
    expect(gaps.length).toBeGreaterThanOrEqual(25);
    console.log(
      `lock hand-over gap over ${gaps.length} hand-overs: p50 ${quantile(gaps, 0.5)} ms, p95 ${quantile(gaps, 0.95)} ms`,
    );
    expect(quantile(gaps, 0.95)).toBeLessThan(250);
    await expectNoLocks(prefix);
  });

  it('ferry locks lists holders and waiters', async () => {
    const prefix = nextPrefix();
    const bastion = await manager(prefix, ['a', 'b', 'c'], { bastion: 'bastion-7' });
    await bastion.acquire(fakeJob('holder', 'web01', 'a', 'b'), new AbortController(), quietLogger);
    const controller = new AbortController();
    const waiting = bastion.acquire(fakeJob('waiter', 'web02', 'c', 'a'), controller, quietLogger);
    await sleep(100);

    const ferry = join(import.meta.dirname, '..', '..', '..', 'bin', 'ferry.mjs');
    const run = (args: string[]) =>
      promisify(execFile)(process.execPath, [
        ferry,
        'locks',
        '--redis',
        redis.url,
        '--prefix',
        prefix,
        ...args,
      ]);
    const { stdout } = await run([]);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('a: slots 1 of 1 in use');
    expect(lines[1]).toMatch(
      /^ {2}holding {2}job holder {2}web01 a -> b {2}for \d+ m?s, waited \d+ m?s, bastion bastion-7$/,
    );
    expect(lines[2]).toMatch(
      /^ {2}waiting {2}job waiter {2}web02 c -> a {2}for \d+ m?s, blocked by host a, bastion bastion-7$/,
    );
    expect(lines.slice(3).map((line) => line.replace(/\d+ m?s\b/g, 'N'))).toEqual([
      'b: slots 1 of 1 in use',
      '  holding  job holder  web01 a -> b  for N, waited N, bastion bastion-7',
      'c: slots 0 of 1 in use',
      '  waiting  job waiter  web02 c -> a  for N, blocked by host a, bastion bastion-7',
    ]);
    const json = JSON.parse((await run(['--json'])).stdout) as { hosts: Array<{ host: string }> };
    expect(json.hosts.map((host) => host.host)).toEqual(['a', 'b', 'c']);

    controller.abort(new Error('test over'));
    await expect(waiting).rejects.toThrow('test over');
    await bastion.release('holder');
    await expectNoLocks(prefix);
  });
});

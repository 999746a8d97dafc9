/**
 * The lock scheduler as one worker uses it: a job waits here, inside its processor, until it
 * holds its VM lock and both host slots, then keeps their lease alive until release().
 *
 * Why wait inside the processor rather than postpone the job (moveToDelayed + DelayedError):
 * a postponed job is out of reach when its slots free up. Another worker would first have to
 * promote it and then take it from the queue behind every job queued meanwhile, and a grant
 * made to it in the meantime would keep hosts idle. A job waiting here is woken by the
 * scheduler's grant message the moment its slots are granted, with no polling. BullMQ keeps
 * renewing the job's own lock while it waits, and no attempt is used, because the processor
 * neither fails nor returns.
 *
 * NOTE: a waiting job occupies one of its worker's concurrency slots. When every slot of every
 * worker holds a waiting job, a job still in BullMQ's queue that could use an idle host does
 * not start until one of them does; give workers more concurrency than the hosts allow.
 *
 * INVARIANTS
 * - acquire() returns only once the job holds its whole set (see scripts.ts) and its hosts
 *   show no migration in flight that no lock accounts for. When it throws, the job holds
 *   nothing and is out of the queue, except after the grant: then release() gives it up.
 *   When Redis cannot be reached to leave the queue, the place expires with its lease.
 * - A job that holds its set has a running LeaseKeeper until release(); a lost lease aborts
 *   the job's controller with LEASE_LOST.
 * - stopWaiting() ends every wait: a waiting job leaves the scheduler's queue and goes back
 *   to BullMQ's wait list without using an attempt. Held leases keep being renewed until
 *   release() or close().
 */
import { randomUUID } from 'node:crypto';

import { WaitingError } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

import type { Inventory } from '../config/inventory.js';
import { FerryError } from '../errors.js';
import { createRedisConnection } from '../jobs/connection.js';
import type { SshPool } from '../ssh/pool.js';
import { busyHosts, inFlightWaitTimeout, slotWaitTimeout } from './describe.js';
import { findUnaccountedMigrations, sshInFlightLister, type InFlightLister } from './in-flight.js';
import { LeaseKeeper } from './lease.js';
import { compileLockOptions, type CompiledLockOptions, type LockOptions } from './options.js';
import { migrationResources, type LockResource, type LockSubject } from './resources.js';
import { LockStore, type EnterReply } from './store.js';
import { Waiter, abortable, withTimeout } from './wait.js';

export interface LockManagerOptions extends LockOptions {
  redisUrl: string;
  /** Key prefix, the same as the queue's. */
  prefix: string;
  inventory: Inventory;
  /** Name of this bastion in the lock records. */
  bastion: string;
  logger: Logger;
  /** SSH pool for the in-flight check; required unless `listInFlight` is given. */
  pool?: SshPool;
  /** Lists a host's migrations in flight. Default: the host's driver, through `pool`. */
  listInFlight?: InFlightLister;
}

/** The parts of a BullMQ job that the scheduler uses. */
export interface LockableJob {
  id?: string | undefined;
  data: LockSubject;
  token?: string | undefined;
  moveToWait(token?: string): Promise<unknown>;
}

interface HeldLocks {
  token: string;
  keeper: LeaseKeeper;
  logger: Logger;
}

/** Raised inside acquire() when stopWaiting() ends a wait. */
class StopWaiting extends Error {}

export class LockManager {
  readonly options: CompiledLockOptions;
  readonly store: LockStore;
  readonly #settings: LockManagerOptions;
  readonly #subscriber: Redis;
  readonly #listInFlight: InFlightLister;
  readonly #waiters = new Map<string, Waiter>();
  readonly #held = new Map<string, HeldLocks>();
  #stopping = false;

  private constructor(settings: LockManagerOptions, connection: Redis, subscriber: Redis) {
    this.options = compileLockOptions(settings);
    this.#settings = settings;
    this.store = new LockStore(connection, settings.prefix);
    this.#subscriber = subscriber;
    if (settings.listInFlight !== undefined) {
      this.#listInFlight = settings.listInFlight;
    } else if (settings.pool !== undefined) {
      this.#listInFlight = sshInFlightLister(settings.pool);
    } else {
      throw new FerryError('INVALID_CONFIG', 'The lock manager needs an SSH pool or an in-flight lister.', {
        context: { field: 'pool' },
      });
    }
  }

  /** Connects to Redis and subscribes to grant messages. Throws INVALID_CONFIG on bad options. */
  static async start(settings: LockManagerOptions): Promise<LockManager> {
    compileLockOptions(settings);
    const connection = createRedisConnection(settings.redisUrl, 'worker');
    const subscriber = createRedisConnection(settings.redisUrl, 'worker');
    const manager = new LockManager(settings, connection, subscriber);
    subscriber.on('message', (_channel: string, jobId: string) => manager.#waiters.get(jobId)?.wake());
    // Grants announced while the subscriber was reconnecting are lost: every waiter re-checks.
    subscriber.on('ready', () => {
      for (const waiter of manager.#waiters.values()) waiter.wake();
    });
    await subscriber.subscribe(manager.store.grantedChannel);
    return manager;
  }

  /** Jobs of this worker waiting for their lock and slots, and jobs holding them. */
  get counts(): { waiting: number; holding: number } {
    return { waiting: this.#waiters.size, holding: this.#held.size };
  }

  /**
   * Waits until the job holds its VM lock and both host slots, and its hosts show no
   * migration that no lock accounts for. Rejects with the controller's abort reason (a
   * cancel), SLOT_WAIT_TIMEOUT after the maximum wait, or BullMQ's WaitingError after the job
   * was handed back to the queue by stopWaiting(). Once it holds its locks, a lost lease
   * aborts `controller` with LEASE_LOST.
   */
  async acquire(job: LockableJob, controller: AbortController, logger: Logger): Promise<void> {
    const jobId = job.id;
    if (jobId === undefined) {
      throw new FerryError('INVALID_REQUEST', 'A job without an id cannot take locks.');
    }
    const subject: LockSubject = { vm: job.data.vm, source: job.data.source, target: job.data.target };
    const resources = migrationResources(subject, this.#settings.inventory, this.options.maxMigrations);
    const token = randomUUID();
    const signal = controller.signal;

    let grant: EnterReply & { confirmedAt: number };
    try {
      grant = await this.#waitForGrant(jobId, subject, resources, token, signal, logger);
    } catch (error) {
      await this.#leave(jobId, token, logger);
      if (error instanceof StopWaiting) return this.#handBack(job, logger);
      throw error;
    }

    const keeper = new LeaseKeeper(
      this.store,
      jobId,
      token,
      this.options,
      logger,
      (lost) => {
        if (!signal.aborted) controller.abort(lost);
      },
      grant.confirmedAt,
    );
    this.#held.set(jobId, { token, keeper, logger });
    keeper.start();
    // Time in the queue only: a reclaimed job was granted long before this run began.
    const queuedMs = Math.max(0, (grant.grantedAt || grant.now) - grant.since);
    const fields = { waitedMs: queuedMs, resources: resources.map((resource) => resource.name) };
    if (grant.reclaimed) logger.info(fields, 'Reclaimed the VM lock and host slots of this job');
    else logger.debug(fields, 'VM lock and host slots acquired');

    const deadline = performance.now() + this.options.maxWaitMs - queuedMs;
    try {
      await this.#waitForUnaccounted(jobId, subject, deadline, queuedMs, signal, logger);
    } catch (error) {
      if (!(error instanceof StopWaiting)) throw error;
      await this.release(jobId);
      return this.#handBack(job, logger);
    }
    try {
      await this.store.recordStart(jobId, token, grant.now);
    } catch (error) {
      // The event only serves the hand-over measurement; the migration goes ahead without it.
      logger.warn({ err: error }, 'Could not record the start event');
    }
  }

  /**
   * Releases the job's lock and slots and hands them to the next waiters. Never throws: when
   * Redis cannot be reached, the lease expires by itself.
   */
  async release(jobId: string): Promise<void> {
    const held = this.#held.get(jobId);
    if (held === undefined) return;
    this.#held.delete(jobId);
    held.keeper.stop();
    try {
      const reply = await withTimeout(
        this.store.release(jobId, held.token),
        Math.min(5_000, this.options.leaseMs),
        'Lock release',
      );
      if (!reply.released) {
        held.logger.warn({ reason: reply.reason }, 'Locks not released: the job was taken over');
      } else held.logger.debug('VM lock and host slots released');
    } catch (error) {
      held.logger.warn({ err: error }, 'Lock release failed; the lease expires by itself');
    }
  }

  /** Ends every wait; waiting jobs go back to BullMQ's queue. Held locks stay renewed. */
  stopWaiting(): void {
    this.#stopping = true;
    for (const waiter of this.#waiters.values()) waiter.wake('stopping');
  }

  /** Stops waits and renewals and disconnects. Leases still held expire by themselves. */
  async close(): Promise<void> {
    this.stopWaiting();
    for (const held of this.#held.values()) held.keeper.stop();
    this.#held.clear();
    this.#subscriber.disconnect();
    this.store.redis.disconnect();
  }

  async #waitForGrant(
    jobId: string,
    subject: LockSubject,
    resources: LockResource[],
    token: string,
    signal: AbortSignal,
    logger: Logger,
  ): Promise<EnterReply & { confirmedAt: number }> {
    const waiter = new Waiter();
    // Registered before the first request, so that a grant announced meanwhile is not missed.
    this.#waiters.set(jobId, waiter);
    let reported = '';
    try {
      for (;;) {
        if (this.#stopping) throw new StopWaiting();
        const sentAt = performance.now();
        const reply = await abortable(
          this.store.enter({
            jobId,
            token,
            resources,
            leaseMs: this.options.leaseMs,
            ageingMs: this.options.ageingMs,
            subject,
            bastion: this.#settings.bastion,
          }),
          signal,
        );
        if (reply.granted) return { ...reply, confirmedAt: sentAt };

        const waitedMs = reply.now - reply.since;
        if (waitedMs >= this.options.maxWaitMs) {
          throw slotWaitTimeout(subject, reply.blocked, waitedMs, this.options.maxWaitMs);
        }
        const state = `${reply.blocked.join(',')}|${reply.reserving}`;
        if (state !== reported) {
          const fields = { blocked: reply.blocked, busyHosts: busyHosts(reply.blocked), waitedMs };
          if (reported === '') logger.info(fields, 'Waiting for the VM lock and host slots');
          else if (reply.reserving) {
            logger.info(fields, 'Waited past the ageing threshold; reserving the slots');
          } else logger.debug(fields, 'Still waiting for the VM lock and host slots');
          reported = state;
        }
        // The heartbeat refreshes the job's place; a grant message ends the wait earlier.
        const woken = await waiter.wait(
          Math.min(this.options.heartbeatMs, this.options.maxWaitMs - waitedMs),
          signal,
        );
        if (woken === 'stopping') throw new StopWaiting();
      }
    } finally {
      this.#waiters.delete(jobId);
    }
  }

  async #waitForUnaccounted(
    jobId: string,
    subject: LockSubject,
    deadline: number,
    waitedBeforeMs: number,
    signal: AbortSignal,
    logger: Logger,
  ): Promise<void> {
    const started = performance.now();
    const waiter = new Waiter();
    // Registered like a waiting job, so that stopWaiting() ends this wait too.
    this.#waiters.set(jobId, waiter);
    let reported = '';
    try {
      for (;;) {
        const found = await findUnaccountedMigrations(
          subject,
          this.#settings.inventory,
          this.#listInFlight,
          this.store,
          signal,
        );
        if (found.length === 0) return;
        const state = JSON.stringify(found);
        if (state !== reported) {
          logger.warn({ inFlight: found }, 'Waiting for migrations that no lock accounts for');
          reported = state;
        }
        const remaining = deadline - performance.now();
        if (remaining <= 0) {
          throw inFlightWaitTimeout(subject, found, waitedBeforeMs + performance.now() - started);
        }
        if (this.#stopping) throw new StopWaiting();
        // Hosts announce nothing when a migration ends, so this wait re-checks at an interval.
        const woken = await waiter.wait(Math.min(this.options.inFlightRecheckMs, remaining), signal);
        if (woken === 'stopping') throw new StopWaiting();
      }
    } finally {
      this.#waiters.delete(jobId);
    }
  }

  async #leave(jobId: string, token: string, logger: Logger): Promise<void> {
    try {
      await withTimeout(
        this.store.release(jobId, token),
        Math.min(5_000, this.options.leaseMs),
        'Leaving the queue',
      );
    } catch (error) {
      logger.warn({ err: error }, 'Could not leave the lock queue; the place expires by itself');
    }
  }

  /** Puts a job that was waiting back in BullMQ's wait list, without using an attempt. */
  async #handBack(job: LockableJob, logger: Logger): Promise<never> {
    logger.info('Worker stopping; the waiting job goes back to the queue');
    try {
      await job.moveToWait(job.token);
    } catch (error) {
      // The job stays active until its BullMQ lock expires; another worker then takes it over.
      logger.warn({ err: error }, 'Could not put the waiting job back in the queue');
    }
    throw new WaitingError();
  }
}

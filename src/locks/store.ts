/**
 * Typed calls of the lock scheduler's Redis scripts (see scripts.ts for the invariants they
 * keep). Every reply is validated, so a script and its caller cannot drift apart silently.
 */
import { createHash } from 'node:crypto';

import type { Redis } from 'ioredis';
import { z } from 'zod';

import type { LockResource, LockSubject } from './resources.js';
import {
  enterScript,
  lockedVmsScript,
  releaseScript,
  renewScript,
  snapshotScript,
  startScript,
} from './scripts.js';

/** A Lua script run by its SHA1, loaded on the first NOSCRIPT reply. */
class LuaScript {
  readonly #sha: string;

  constructor(readonly source: string) {
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, args: Array<string | number>): Promise<string> {
    try {
      return String(await redis.evalsha(this.#sha, 0, ...args));
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return String(await redis.eval(this.source, 0, ...args));
    }
  }
}

const scripts = {
  enter: new LuaScript(enterScript),
  renew: new LuaScript(renewScript),
  release: new LuaScript(releaseScript),
  start: new LuaScript(startScript),
  lockedVms: new LuaScript(lockedVmsScript),
  snapshot: new LuaScript(snapshotScript),
};

/** Lua's JSON encoder writes an empty table as `{}`; lists in replies accept that too. */
const list = <T extends z.ZodType>(item: T) =>
  z.union([
    z.array(item),
    z
      .object({})
      .strict()
      .transform(() => []),
  ]);

const enterReplySchema = z.object({
  granted: z.boolean(),
  now: z.number(),
  since: z.number(),
  grantedAt: z.number(),
  blocked: z.string().transform((text) => z.array(z.string()).parse(JSON.parse(text))),
  reserving: z.boolean(),
  /** True when the job held its set under another token, that is, another run of it. */
  reclaimed: z.boolean(),
});
export type EnterReply = z.infer<typeof enterReplySchema>;

const renewReplySchema = z.object({
  renewed: z.boolean(),
  now: z.number(),
  expiresAt: z.number().optional(),
  reason: z.enum(['missing', 'superseded', 'not-holding', 'expired']).optional(),
  resource: z.string().optional(),
});
export type RenewReply = z.infer<typeof renewReplySchema>;

const releaseReplySchema = z.object({
  released: z.boolean(),
  now: z.number(),
  reason: z.string().optional(),
});
export type ReleaseReply = z.infer<typeof releaseReplySchema>;

const startReplySchema = z.object({ recorded: z.boolean(), now: z.number() });
const lockedVmsReplySchema = z.object({ now: z.number(), locked: list(z.string()) });

const jobRecordSchema = z.record(z.string(), z.string());
const snapshotReplySchema = z.object({
  now: z.number(),
  holders: z.record(z.string(), list(z.object({ job: z.string(), expiresAt: z.number() }))),
  waiting: list(z.object({ job: z.string(), since: z.number() })),
  jobs: z.record(z.string(), jobRecordSchema),
});
/** The scheduler's state at one instant, as Redis stores it; times are Redis times in ms. */
export type RawLockSnapshot = z.infer<typeof snapshotReplySchema>;

/** Request of a job that enters the scheduler or confirms its grant. */
export interface EnterRequest {
  jobId: string;
  token: string;
  resources: LockResource[];
  leaseMs: number;
  ageingMs: number;
  subject: LockSubject;
  bastion: string;
}

/** Redis key names and channel of the scheduler under a prefix. */
export function lockKeys(prefix: string): { events: string; granted: string } {
  return { events: `${prefix}:locks:events`, granted: `${prefix}:locks:granted` };
}

/** The scheduler's scripts bound to one Redis connection and key prefix. */
export class LockStore {
  constructor(
    readonly redis: Redis,
    readonly prefix: string,
  ) {}

  /** Channel on which the scheduler announces each grant with the job id. */
  get grantedChannel(): string {
    return lockKeys(this.prefix).granted;
  }

  async enter(request: EnterRequest): Promise<EnterReply> {
    const reply = await scripts.enter.run(this.redis, [
      this.prefix,
      request.jobId,
      request.token,
      JSON.stringify(request.resources.map((resource) => [resource.name, resource.limit])),
      request.leaseMs,
      request.ageingMs,
      request.subject.vm,
      request.subject.source,
      request.subject.target,
      request.bastion,
    ]);
    return enterReplySchema.parse(JSON.parse(reply));
  }

  async renew(jobId: string, token: string, leaseMs: number): Promise<RenewReply> {
    const reply = await scripts.renew.run(this.redis, [this.prefix, jobId, token, leaseMs]);
    return renewReplySchema.parse(JSON.parse(reply));
  }

  async release(jobId: string, token: string): Promise<ReleaseReply> {
    const reply = await scripts.release.run(this.redis, [this.prefix, jobId, token]);
    return releaseReplySchema.parse(JSON.parse(reply));
  }

  /** Records the `started` event of a job that holds its locks; false when it no longer does. */
  async recordStart(jobId: string, token: string, confirmedAt: number): Promise<boolean> {
    const reply = await scripts.start.run(this.redis, [this.prefix, jobId, token, confirmedAt]);
    return startReplySchema.parse(JSON.parse(reply)).recorded;
  }

  /** Returns the VMs among `vms` whose lock some job holds. */
  async lockedVms(vms: string[]): Promise<string[]> {
    if (vms.length === 0) return [];
    const reply = await scripts.lockedVms.run(this.redis, [this.prefix, ...vms]);
    return lockedVmsReplySchema.parse(JSON.parse(reply)).locked;
  }

  async snapshot(): Promise<RawLockSnapshot> {
    const reply = await scripts.snapshot.run(this.redis, [this.prefix]);
    return snapshotReplySchema.parse(JSON.parse(reply));
  }
}

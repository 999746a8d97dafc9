/** Global options of the `ferry` command, resolved from flags, then the environment, then defaults. */
import { userInfo } from 'node:os';
import { resolve } from 'node:path';

import { InvalidArgumentError } from 'commander';

import { loadInventory, type Inventory } from '../config/inventory.js';
import { FerryError } from '../errors.js';
import { defaultPrefix, defaultRedisUrl, openMigrationQueue, type MigrationQueue } from '../jobs/queue.js';

/** The global flags as commander parses them. */
export interface GlobalOptions {
  redis?: string;
  inventory?: string;
  prefix?: string;
}

export interface CliSettings {
  redisUrl: string;
  inventoryPath: string;
  prefix: string;
}

type Environment = Record<string, string | undefined>;

/** Returns the first value that is set and not empty. */
function firstSet(...values: Array<string | undefined>): string | undefined {
  return values.find((value) => value !== undefined && value !== '');
}

export function resolveSettings(options: GlobalOptions, env: Environment = process.env): CliSettings {
  return {
    redisUrl: firstSet(options.redis, env.FERRY_REDIS_URL, env.REDIS_URL) ?? defaultRedisUrl,
    inventoryPath: resolve(firstSet(options.inventory, env.FERRY_INVENTORY) ?? 'inventory.yaml'),
    prefix: firstSet(options.prefix, env.FERRY_PREFIX) ?? defaultPrefix,
  };
}

/** Returns the requester: the flag, then FERRY_REQUESTER, then the Unix user name. */
export function resolveRequester(flag: string | undefined, env: Environment = process.env): string {
  const chosen = firstSet(flag, env.FERRY_REQUESTER);
  if (chosen !== undefined) return chosen;
  try {
    return userInfo().username;
  } catch {
    // No passwd entry for this uid, as in some containers.
    const fromShell = firstSet(env.USER, env.LOGNAME);
    if (fromShell !== undefined) return fromShell;
    throw new FerryError(
      'INVALID_CONFIG',
      'Cannot tell the requester: pass --requester ID or set FERRY_REQUESTER.',
      {
        context: { field: 'requester' },
      },
    );
  }
}

export function loadCliInventory(settings: CliSettings): Inventory {
  return loadInventory(settings.inventoryPath);
}

/** Opens the queue, runs `action` with it and closes it, also when `action` throws. */
export async function withQueue<T>(
  settings: CliSettings,
  action: (queue: MigrationQueue) => Promise<T>,
): Promise<T> {
  const queue = await openMigrationQueue({ redisUrl: settings.redisUrl, prefix: settings.prefix });
  try {
    return await action(queue);
  } finally {
    await queue.close();
  }
}

/** Returns a commander argument parser for a whole number from 1 to `max`. */
export function wholeNumber(max: number): (text: string) => number {
  return (text) => {
    const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < 1 || value > max) {
      throw new InvalidArgumentError(`Use a whole number from 1 to ${max}.`);
    }
    return value;
  };
}

/** Command counts of a Redis server, from INFO commandstats. */
import type { Redis } from 'ioredis';

/** Calls per command name since the server started (or since CONFIG RESETSTAT). */
export type CommandCounts = Map<string, number>;

export async function commandCounts(redis: Redis): Promise<CommandCounts> {
  const text = await redis.info('commandstats');
  const counts: CommandCounts = new Map();
  for (const line of text.split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match !== null) counts.set(match[1] as string, Number(match[2]));
  }
  return counts;
}

/**
 * Returns the calls per command between two readings, largest first. Commands that Lua
 * scripts run count too, as Redis counts them.
 */
export function commandDelta(before: CommandCounts, after: CommandCounts): Array<[string, number]> {
  const delta: Array<[string, number]> = [];
  for (const [name, calls] of after) {
    const difference = calls - (before.get(name) ?? 0);
    if (difference > 0) delta.push([name, difference]);
  }
  return delta.sort((a, b) => b[1] - a[1]);
}

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { workerOptionsFrom } from '../../../src/cli/worker.js';
import { FerryError } from '../../../src/errors.js';

const repository = resolve(import.meta.dirname, '../../..');
let folder: string;
let inventoryPath: string;

beforeAll(() => {
  folder = mkdtempSync(join(tmpdir(), 'ferry-worker-options-'));
  inventoryPath = join(folder, 'inventory.yaml');
  const host = `{ address: 127.0.0.2, user: ferrylab, identityFile: /tmp/x/id, hostKey: 'SHA256:${'A'.repeat(43)}' }`;
  writeFileSync(inventoryPath, `hosts:\n  xen-a: ${host}\n  xen-b: ${host}\n`);
});

afterAll(() => {
  if (folder !== undefined) rmSync(folder, { recursive: true, force: true });
});

function configError(run: () => unknown): FerryError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(FerryError);
    return error as FerryError;
  }
  throw new Error('no error was thrown');
}

describe('workerOptionsFrom', () => {
  it('reads the settings from the environment', () => {
    const options = workerOptionsFrom(
      {},
      {},
      {
        FERRY_REDIS_URL: 'redis://127.0.0.1:6390',
        FERRY_INVENTORY: inventoryPath,
        FERRY_PREFIX: 'lab',
        FERRY_CONCURRENCY: '2',
        FERRY_EXIT_WHEN_DRAINED: 'true',
        FERRY_BASTION: 'bastion-1',
      },
    );
    expect(options).toMatchObject({
      redisUrl: 'redis://127.0.0.1:6390',
      prefix: 'lab',
      concurrency: 2,
      exitWhenDrained: true,
      bastion: 'bastion-1',
    });
    expect(options.inventory.names()).toEqual(['xen-a', 'xen-b']);
  });

  it('lets flags win over the environment', () => {
    const options = workerOptionsFrom(
      { redis: 'redis://127.0.0.1:6391', inventory: inventoryPath },
      { concurrency: 5, bastion: 'from-flag' },
      { FERRY_REDIS_URL: 'redis://127.0.0.1:6390', FERRY_CONCURRENCY: '2', FERRY_BASTION: 'from-env' },
    );
    expect(options).toMatchObject({
      redisUrl: 'redis://127.0.0.1:6391',
      concurrency: 5,
      bastion: 'from-flag',
    });
  });

  it('falls back to REDIS_URL, then the default', () => {
    const fromRedisUrl = workerOptionsFrom(
      { inventory: inventoryPath },
      {},
      { REDIS_URL: 'redis://10.0.0.5:6379' },
    );
    expect(fromRedisUrl.redisUrl).toBe('redis://10.0.0.5:6379');
    const fallback = workerOptionsFrom({ inventory: inventoryPath }, {}, {});
    expect(fallback.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(fallback.prefix).toBe('ferry');
  });

  it('rejects bad environment values, naming the variable', () => {
    const env = { FERRY_INVENTORY: inventoryPath };
    const cases: Array<[Record<string, string>, string]> = [
      [{ FERRY_CONCURRENCY: '0' }, 'FERRY_CONCURRENCY'],
      [{ FERRY_CONCURRENCY: 'four' }, 'FERRY_CONCURRENCY'],
      [{ FERRY_EXIT_WHEN_DRAINED: 'maybe' }, 'FERRY_EXIT_WHEN_DRAINED'],
      [{ FERRY_BASTION: 'bastion;1' }, 'FERRY_BASTION'],
      [{ FERRY_PREFIX: 'a:b' }, 'prefix'],
    ];
    for (const [change, name] of cases) {
      const error = configError(() => workerOptionsFrom({}, {}, { ...env, ...change }));
      expect(error.code).toBe('INVALID_CONFIG');
      expect(error.message).toContain(name);
    }
  });

  it('rejects a missing inventory file', () => {
    const error = configError(() =>
      workerOptionsFrom({}, {}, { FERRY_INVENTORY: join(folder, 'absent.yaml') }),
    );
    expect(error.code).toBe('INVALID_INVENTORY');
  });
});

describe('worker entry points', () => {
  async function run(
    command: string[],
    env: Record<string, string>,
  ): Promise<{ code: number; stderr: string }> {
    return new Promise((done) => {
      execFile(
        process.execPath,
        command,
        { cwd: repository, timeout: 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } },
        (error, _stdout, stderr) => {
          let code = 0;
          if (error !== null) code = typeof error.code === 'number' ? error.code : -1;
          done({ code, stderr });
        },
      );
    });
  }

  it('ferry worker rejects a bad --concurrency with exit code 2', async () => {
    const { code, stderr } = await run(['bin/ferry.mjs', 'worker', '--concurrency', '0'], {
      FERRY_INVENTORY: inventoryPath,
    });
    expect(code).toBe(2);
    expect(stderr).toContain('--concurrency');
  });

  it('workers/bastion.ts rejects a bad FERRY_CONCURRENCY with exit code 2', async () => {
    const { code, stderr } = await run(['--import', 'tsx', 'workers/bastion.ts'], {
      FERRY_INVENTORY: inventoryPath,
      FERRY_CONCURRENCY: 'many',
    });
    expect(code).toBe(2);
    expect(stderr.trim()).toBe('ferry: Invalid FERRY_CONCURRENCY "many": use a whole number from 1 to 64.');
  });
});

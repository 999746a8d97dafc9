/**
 * Checks of docker/ and deploy/ that need no Docker engine and no systemd as PID 1. They cover
 * the compose file as docker-compose parses it, the Dockerfile's stages, and the worker's systemd
 * unit. The image's entry points run directly with Node against the lab's Redis.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

import { compileApiConfig } from '../../../producers/api/config.js';
import { hashToken } from '../../../producers/api/tokens.js';
import { loadInventory } from '../../../src/config/inventory.js';
import { Lab } from '../../../src/lab/lab.js';
import { findFreePort, isListening } from '../../../src/lab/ports.js';

const repository = resolve(import.meta.dirname, '../../..');

interface RunOutput {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(command: string, args: string[], env: Record<string, string> = {}): Promise<RunOutput> {
  return new Promise((resolveRun) => {
    execFile(
      command,
      args,
      { cwd: repository, timeout: 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } },
      (error, stdout, stderr) => {
        let code = 0;
        if (error !== null) code = typeof error.code === 'number' ? error.code : -1;
        resolveRun({ code, stdout, stderr });
      },
    );
  });
}

/** Dockerfile instructions, with continuation lines joined, grouped by stage. */
function dockerfileStages(text: string): Array<Array<{ keyword: string; rest: string }>> {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const stages: Array<Array<{ keyword: string; rest: string }>> = [];
  for (const line of lines) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    if (keyword.toUpperCase() === 'FROM') stages.push([]);
    stages.at(-1)?.push({ keyword: keyword.toUpperCase(), rest: rest.join(' ') });
  }
  return stages;
}

describe('compose file', () => {
  it('parses with docker-compose and runs Redis, one API and two workers', async () => {
    const output = await run('/usr/bin/docker-compose', ['-f', 'docker/compose.yaml', 'config']);
    expect(output.stderr).toBe('');
    expect(output.code).toBe(0);
    const config = parseYaml(output.stdout);
    const services = config.services as Record<string, Record<string, unknown>>;
    expect(Object.keys(services).sort()).toEqual(['api', 'redis', 'worker-1', 'worker-2']);

    const redisCommand = (services.redis?.command as string[]).join(' ');
    expect(redisCommand).toContain('--appendonly yes');
    expect(redisCommand).toContain('--maxmemory-policy noeviction');

    expect(services.api?.command).toEqual(['api', '--listen', '0.0.0.0:8080']);
    for (const name of ['api', 'worker-1', 'worker-2']) {
      const service = services[name] as Record<string, unknown>;
      expect((service.build as Record<string, string>).dockerfile, name).toBe('docker/Dockerfile');
      expect(service.volumes as string[], name).toEqual(
        expect.arrayContaining([expect.stringMatching(/:\/etc\/ferry\/inventory\.yaml:ro$/)]),
      );
      expect((service.environment as Record<string, string>).FERRY_REDIS_URL, name).toBe(
        'redis://redis:6379',
      );
    }
    for (const name of ['worker-1', 'worker-2']) {
      expect(services[name]?.command, name).toEqual(['worker']);
      // Docker waits longer than the worker's own grace period before it kills the worker.
      expect(services[name]?.stop_grace_period, name).toBe('2h5m');
      expect((services[name]?.environment as Record<string, string>).FERRY_SHUTDOWN_GRACE_MS, name).toBe(
        '7200000',
      );
    }
    expect((services['worker-1']?.environment as Record<string, string>).FERRY_BASTION).toBe('worker-1');
    expect((services['worker-2']?.environment as Record<string, string>).FERRY_BASTION).toBe('worker-2');
  });

  it('fails docker-compose on an invalid file, so the check above can fail', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'ferry-compose-'));
    try {
      writeFileSync(
        join(folder, 'compose.yaml'),
        'services:\n  api:\n    image: x\n    restart: sometimes-maybe\n    ports: 12\n',
      );
      const output = await run('/usr/bin/docker-compose', [
        '-f',
        join(folder, 'compose.yaml'),
        'config',
        '-q',
      ]);
      expect(output.code).not.toBe(0);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe('Dockerfile', () => {
  const stages = dockerfileStages(readFileSync(join(repository, 'docker/Dockerfile'), 'utf8'));
  const final = stages.at(-1) ?? [];

  it('builds in one stage and runs from a clean one', () => {
    expect(stages).toHaveLength(2);
    expect(stages[0]?.[0]?.rest).toMatch(/^node:20-bookworm-slim AS build$/);
    expect(final[0]?.rest).toBe('node:20-bookworm-slim');
    const finalRuns = final.filter((instruction) => instruction.keyword === 'RUN');
    expect(finalRuns).toEqual([]);
    expect(final.some((instruction) => /g\+\+|make|python3/.test(instruction.rest))).toBe(false);
    expect(final.find((instruction) => instruction.keyword === 'COPY')?.rest).toBe('--from=build /app /app');
  });

  it('runs as a non-root user with a health check and node entry points', () => {
    const user = final.filter((instruction) => instruction.keyword === 'USER').at(-1)?.rest;
    expect(user).toBe('node');
    expect(final.find((instruction) => instruction.keyword === 'HEALTHCHECK')?.rest).toContain(
      'CMD ["node", "docker/healthcheck.mjs"]',
    );
    expect(final.find((instruction) => instruction.keyword === 'ENTRYPOINT')?.rest).toBe(
      '["node", "bin/ferry.mjs"]',
    );
    expect(final.find((instruction) => instruction.keyword === 'CMD')?.rest).toBe('["worker"]');
  });

  it('copies only paths that exist', () => {
    const copies = (stages[0] ?? []).filter((instruction) => instruction.keyword === 'COPY');
    for (const copy of copies) {
      const sources = copy.rest.split(/\s+/).slice(0, -1);
      for (const source of sources) expect(existsSync(join(repository, source)), source).toBe(true);
    }
  });
});

describe('image entry points run with Node', () => {
  let lab: Lab;
  let folder: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    lab = await Lab.start({ hosts: [{ name: 'xen-a' }, { name: 'xen-b' }] });
    folder = mkdtempSync(join(tmpdir(), 'ferry-entry-'));
  });

  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await lab?.stop();
    if (folder !== undefined) rmSync(folder, { recursive: true, force: true });
  });

  function environment(extra: Record<string, string> = {}): Record<string, string> {
    return {
      FERRY_REDIS_URL: lab.redis?.url as string,
      FERRY_INVENTORY: lab.inventoryPath,
      FERRY_PREFIX: `entry-${process.pid}`,
      FERRY_LOG_LEVEL: 'warn',
      HOME: folder,
      ...extra,
    };
  }

  /** Starts `node bin/ferry.mjs ARGS` in the background, as the image's ENTRYPOINT does. */
  function start(args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string } {
    const child = spawn(process.execPath, ['bin/ferry.mjs', ...args], {
      cwd: repository,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    return { child, output: () => output };
  }

  async function waitFor(condition: () => Promise<boolean> | boolean, what: string): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    }
  }

  async function exitOf(child: ChildProcess, timeoutMs = 15_000): Promise<number | null> {
    if (child.exitCode !== null) return child.exitCode;
    return new Promise((resolveExit, reject) => {
      const timer = setTimeout(() => reject(new Error('the process did not exit in time')), timeoutMs);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolveExit(code);
      });
    });
  }

  it('prints help for both roles', async () => {
    const worker = await run(process.execPath, ['bin/ferry.mjs', 'worker', '--help'], environment());
    expect(worker.code).toBe(0);
    expect(worker.stdout).toContain('run a migration worker');
    const api = await run(process.execPath, ['bin/ferry.mjs', 'api', '--help'], environment());
    expect(api.code).toBe(0);
    expect(api.stdout).toContain('--listen <host:port>');
  });

  it('makes a token whose hash the configuration accepts', async () => {
    const output = await run(
      process.execPath,
      ['bin/ferry.mjs', 'api', 'token', '--name', 'ticketing'],
      environment(),
    );
    expect(output.code).toBe(0);
    const token = /^# (ferry_\S+)$/m.exec(output.stdout)?.[1] as string;
    const entry = parseYaml(
      output.stdout
        .split('\n')
        .filter((line) => !line.startsWith('#'))
        .join('\n'),
    );
    expect(entry).toEqual([{ name: 'ticketing', sha256: hashToken(token) }]);

    const invalid = await run(
      process.execPath,
      ['bin/ferry.mjs', 'api', 'token', '--name', 'two words'],
      environment(),
    );
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain('Invalid --name');
  });

  it('serves the API and passes the API health check, then stops on SIGTERM', async () => {
    const configPath = join(folder, 'api.yaml');
    writeFileSync(configPath, `tokens:\n  - name: ops\n    sha256: ${hashToken('ferry_entry')}\n`);
    const port = await findFreePort();
    const { child: api } = start(
      ['api', '--config', configPath, '--listen', `127.0.0.1:${port}`],
      environment(),
    );
    await waitFor(() => isListening('127.0.0.1', port, 200), 'the API to listen');
    const healthUrl = `http://127.0.0.1:${port}/healthz`;
    const healthy = await run(process.execPath, ['docker/healthcheck.mjs'], {
      FERRY_ROLE: 'api',
      FERRY_HEALTH_URL: healthUrl,
    });
    expect(healthy.stderr).toBe('');
    expect(healthy.code).toBe(0);

    api.kill('SIGTERM');
    expect(await exitOf(api)).toBe(0);
    const down = await run(process.execPath, ['docker/healthcheck.mjs'], {
      FERRY_ROLE: 'api',
      FERRY_HEALTH_URL: healthUrl,
    });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('did not answer');
  });

  it('runs a worker and passes the worker health check', async () => {
    const { child: worker, output } = start(
      ['worker', '--bastion', 'entry-test'],
      environment({ FERRY_LOG_LEVEL: 'info' }),
    );
    // Stopped only once it runs, as a container stop would find it.
    await waitFor(() => output().includes('"msg":"Worker started"'), 'the worker to start');
    const healthy = await run(
      process.execPath,
      ['docker/healthcheck.mjs'],
      environment({ FERRY_ROLE: 'worker' }),
    );
    expect(healthy.code).toBe(0);

    const unreachable = await run(process.execPath, ['docker/healthcheck.mjs'], {
      FERRY_ROLE: 'worker',
      FERRY_REDIS_URL: `redis://127.0.0.1:${await findFreePort()}`,
    });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('unreachable');

    expect(worker.exitCode).toBeNull();
    worker.kill('SIGTERM');
    expect(await exitOf(worker)).toBe(0);
    expect(output()).toContain('"msg":"Worker stopped"');
  });

  it('accepts the example API configuration', () => {
    const example = parseYaml(readFileSync(join(repository, 'docker/api.example.yaml'), 'utf8'));
    // The example reads the Slack secret from a file that exists only in a deployment.
    example.slack.signingSecret = { env: 'FERRY_SLACK_SIGNING_SECRET' };
    const settings = compileApiConfig(example, loadInventory(lab.inventoryPath), {
      FERRY_CALLBACK_SECRET: 'x',
      FERRY_SLACK_SIGNING_SECRET: 'y',
      FERRY_SESSION_SECRET: 'z',
    });
    expect(settings.tokens.map((token) => token.identity.name)).toEqual(['ticketing', 'operator']);
  });
});

describe('systemd unit of the worker', () => {
  const unitPath = join(repository, 'deploy/systemd/ferry-worker.service');

  it('passes systemd-analyze verify without warnings', async () => {
    const output = await run('/usr/bin/systemd-analyze', ['verify', unitPath]);
    expect(output.stderr).toBe('');
    expect(output.code).toBe(0);
  });

  it('lets a long migration finish before it is killed', () => {
    const settings = Object.fromEntries(
      readFileSync(unitPath, 'utf8')
        .split('\n')
        .filter((line) => /^[A-Za-z]+=/.test(line))
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    expect(settings.ExecStart).toBe('/usr/bin/node /opt/ferry/bin/ferry.mjs worker');
    expect(settings.KillSignal).toBe('SIGTERM');
    expect(settings.KillMode).toBe('mixed');
    expect(settings.TimeoutStopSec).toBe('2h 5min');
    expect(settings.Environment).toBe('FERRY_SHUTDOWN_GRACE_MS=7200000');
    expect(settings.Restart).toBe('always');
    expect(settings.User).toBe('ferry');
  });
});

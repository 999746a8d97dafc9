import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { findFreePort, isListening } from './ports.js';
import { killTree, waitForExit } from './processes.js';

export interface LabRedisOptions {
  /** Turns on append-only persistence, so that restart() keeps the data. Default false. */
  appendOnly?: boolean;
  /** Folder for the data files; default a new temporary folder, removed by stop(). */
  dir?: string;
  /**
   * Uses this server instead of starting one. Default: the REDIS_URL environment variable when
   * it is set, otherwise a private redis-server.
   */
  url?: string;
}

/** A Redis server for tests and the demo: a private redis-server, or the one REDIS_URL names. */
export interface LabRedis {
  readonly url: string;
  readonly port: number;
  /** Pid of the private server; undefined when an external server is used. */
  readonly pid: number | undefined;
  readonly dir: string | undefined;
  /** Stops the server (SIGTERM, so append-only data is flushed) and starts it on the same port. */
  restart(): Promise<void>;
  /** Stops the server without removing its folder, for tests of Redis being down. */
  halt(): Promise<void>;
  /** Starts a halted server again on the same port and folder. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

const redisBinary = '/usr/bin/redis-server';

async function waitUntilReady(child: ChildProcess, port: number): Promise<void> {
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`redis-server exited with code ${child.exitCode} before it was ready:\n${output}`);
    }
    if (await isListening('127.0.0.1', port, 200)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`redis-server did not listen on 127.0.0.1:${port} within 10 s:\n${output}`);
}

/** Starts a private redis-server on a free loopback port, or wraps REDIS_URL. */
export async function startRedis(options: LabRedisOptions = {}): Promise<LabRedis> {
  const externalUrl = options.url ?? process.env.REDIS_URL;
  if (externalUrl !== undefined && externalUrl !== '') return externalRedis(externalUrl);

  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'ferry-redis-'));
  const port = await findFreePort();
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const args = [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      options.appendOnly === true ? 'yes' : 'no',
      '--appendfsync',
      'everysec',
      '--maxmemory-policy',
      'noeviction',
      '--protected-mode',
      'yes',
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
    ];
    child = spawn(redisBinary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitUntilReady(child, port);
  };

  const halt = async (): Promise<void> => {
    const current = child;
    child = undefined;
    if (current?.pid === undefined) return;
    current.kill('SIGTERM');
    const left = await waitForExit([current.pid], 5000);
    if (left.length > 0) await killTree(current.pid, 0);
  };

  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid;
    },
    dir,
    restart: async () => {
      await halt();
      await launch();
    },
    halt,
    resume: launch,
    stop: async () => {
      await halt();
      if (ownsDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

function externalRedis(url: string): LabRedis {
  const parsed = new URL(url);
  const noServerControl = async (): Promise<void> => {
    throw new Error(`REDIS_URL=${url} is an external server: the lab cannot stop or restart it.`);
  };
  return {
    url,
    port: Number(parsed.port || 6379),
    pid: undefined,
    dir: undefined,
    restart: noServerControl,
    halt: noServerControl,
    resume: noServerControl,
    stop: async () => {},
  };
}

/** `ferry worker` processes for the benchmarks that need real, separate workers. */
import { spawn, type ChildProcess } from 'node:child_process';

import { ferryBin, repositoryRoot } from './paths.js';

export interface WorkerProcessOptions {
  redisUrl: string;
  inventoryPath: string;
  prefix: string;
  bastion: string;
  /** FERRY_CONCURRENCY; default: the worker's own default. */
  concurrency?: number;
}

export class WorkerProcess {
  #output = '';

  private constructor(readonly child: ChildProcess) {
    // The worker logs a line per migration; the tail is kept for error messages.
    const keep = (chunk: Buffer): void => {
      this.#output = (this.#output + chunk.toString()).slice(-8_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Starts `ferry worker` and resolves once it has logged that it started. */
  static async start(options: WorkerProcessOptions): Promise<WorkerProcess> {
    const child = spawn(process.execPath, [ferryBin, 'worker'], {
      cwd: repositoryRoot,
      env: {
        ...process.env,
        FERRY_REDIS_URL: options.redisUrl,
        FERRY_INVENTORY: options.inventoryPath,
        FERRY_PREFIX: options.prefix,
        FERRY_BASTION: options.bastion,
        FERRY_LOG_LEVEL: 'info',
        ...(options.concurrency === undefined ? {} : { FERRY_CONCURRENCY: String(options.concurrency) }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const worker = new WorkerProcess(child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail('it did not log "Worker started" within 60 s'), 60_000);
      const fail = (reason: string): void => {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        reject(new Error(`ferry worker ${options.bastion}: ${reason}.\n${worker.#output}`));
      };
      const onData = (chunk: Buffer): void => {
        if (!chunk.toString().includes('"msg":"Worker started"')) return;
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.off('exit', onExit);
        resolve();
      };
      const onExit = (code: number | null): void => fail(`it exited with code ${code}`);
      child.stdout?.on('data', onData);
      child.once('exit', onExit);
    });
    return worker;
  }

  /** Sends SIGTERM and waits for the worker to exit; SIGKILL after `graceMs`. */
  async stop(graceMs = 30_000): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * Direct tunnels: OpenSSH's ssh, started on the source host through an exec channel, forwards
 * a port on the source's loopback to the relocation port on the target's loopback. The stream
 * then never passes through the bastion.
 *
 * INVARIANTS
 * - Readiness is read from ssh's -v output (the forward's `Local forwarding listening` line,
 *   then `Entering interactive session.`). Nothing ever connects to the forwarded port to test
 *   it: one connect-and-close can make a hypervisor waiting for a migration stream give up.
 * - ssh lives only as long as the exec channel: the wrapper kills it when the channel's stdin
 *   closes, which sshd does whenever the channel ends for any reason.
 * - After close() resolves, the ssh process is gone or close() has thrown TUNNEL_FAILED.
 */

import { randomInt } from 'node:crypto';

import type { Logger } from 'pino';
import type { ClientChannel } from 'ssh2';

import { FerryError, isFerryError } from '../errors.js';
import type { SshConnection } from './connection.js';
import { openSshCipherOrder } from './ciphers.js';
import {
  cipherLine,
  classifySshExit,
  listeningLine,
  openFailedLine,
  pidLine,
  reapScript,
  sessionLine,
  StderrLog,
  wrapperName,
  wrapperScript,
  type DirectHop,
} from './direct-script.js';
import { positiveInteger } from './options.js';

export interface DirectTunnelSpec {
  /** Path of the OpenSSH client on the source host. */
  sshPath: string;
  /** Private key on the source host that the target accepts. */
  identityFile: string;
  /** known_hosts file on the source host that lists the target's host key. */
  knownHostsFile: string;
  targetAddress: string;
  targetSshPort: number;
  targetUser: string;
  /** Relocation port on the target's loopback. */
  remotePort: number;
  /**
   * Inclusive range the local port on the source is picked from at random.
   * @defaultValue [20000, 29999]
   */
  localPortRange?: [number, number];
  /**
   * Ports tried before giving up with TUNNEL_PORT_TAKEN when each one is in use.
   * @defaultValue 5
   */
  maxPortTries?: number;
  /**
   * Milliseconds one ssh start may take until its forward listens.
   * @defaultValue 30000 (30 s)
   */
  readyTimeoutMs?: number;
  /** Receives the tunnel's lifecycle at debug and failures at warn. */
  logger?: Logger;
}

export interface DirectTunnel {
  /** Port that ssh listens on, on the source host's 127.0.0.1. */
  readonly port: number;
  /** Pid of the ssh process on the source host. */
  readonly remotePid: number;
  /** Cipher that ssh and the target's sshd agreed on, from ssh's -v output. */
  readonly cipher: string | undefined;
  /** Set when ssh reported a failed forwarded connection or exited on its own. */
  readonly lastError: FerryError | undefined;
  /** Ends ssh, then checks on the source host that it is gone; idempotent. */
  close(): Promise<void>;
}

/**
 * Starts ssh on the source host and resolves once its forward listens.
 * - TUNNEL_PORT_TAKEN: each of the maxPortTries ports was in use.
 * - HOST_KEY_UNKNOWN, HOST_KEY_MISMATCH, AUTH_FAILED, SSH_CONNECT_FAILED: the source -> target
 *   hop failed; the context names the hop.
 * - SSH_TIMEOUT: ssh did not get ready within readyTimeoutMs.
 * - TUNNEL_FAILED or COMMAND_FAILED: anything else, with ssh's stderr in the context.
 */
export async function openDirectTunnel(source: SshConnection, spec: DirectTunnelSpec): Promise<DirectTunnel> {
  const [low, high] = spec.localPortRange ?? [20_000, 29_999];
  if (!Number.isInteger(low) || !Number.isInteger(high) || low < 1 || high > 65_535 || low > high) {
    throw new FerryError(
      'INVALID_CONFIG',
      `Invalid localPortRange [${low}, ${high}]: expected two ports from 1 to 65535, the lower one first.`,
      { context: { field: 'localPortRange' } },
    );
  }
  const maxTries = Math.min(positiveInteger('maxPortTries', spec.maxPortTries, 5), high - low + 1);
  const readyTimeoutMs = positiveInteger('readyTimeoutMs', spec.readyTimeoutMs, 30_000);

  const tried = new Set<number>();
  while (tried.size < maxTries) {
    let port: number;
    do port = randomInt(low, high + 1);
    while (tried.has(port));
    tried.add(port);

    const tunnel = new Direct(source, spec, port, readyTimeoutMs);
    const outcome = await tunnel.start();
    if (outcome === 'ready') return tunnel;
    spec.logger?.debug({ host: source.target.name, port }, 'Direct tunnel port in use, trying another');
  }
  throw new FerryError(
    'TUNNEL_PORT_TAKEN',
    `Direct tunnel on '${source.target.name}' found no free local port in ${low}-${high}; ` +
      `ports tried, all in use: ${[...tried].join(', ')}. Widen localPortRange or retry later.`,
    { context: { host: source.target.name, phase: 'tunnel', ports: [...tried] } },
  );
}

class Direct implements DirectTunnel {
  remotePid = 0;
  cipher: string | undefined;
  lastError: FerryError | undefined;
  readonly #stderr = new StderrLog();
  readonly #hop: DirectHop;
  #channel: ClientChannel | undefined;
  #closing: Promise<void> | undefined;

  constructor(
    readonly source: SshConnection,
    readonly spec: DirectTunnelSpec,
    readonly port: number,
    readonly readyTimeoutMs: number,
  ) {
    this.#hop = {
      sourceHost: source.target.name,
      targetAddress: spec.targetAddress,
      targetSshPort: spec.targetSshPort,
      targetUser: spec.targetUser,
      knownHostsFile: spec.knownHostsFile,
      identityFile: spec.identityFile,
    };
  }

  /** The ssh command line, every argument quoted by execStream. */
  #sshArgv(): string[] {
    const spec = this.spec;
    const connectTimeoutSeconds = Math.max(1, Math.floor(this.readyTimeoutMs / 2000));
    return [
      spec.sshPath,
      '-N',
      '-v',
      '-o',
      'ExitOnForwardFailure=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${spec.knownHostsFile}`,
      '-o',
      'IdentitiesOnly=yes',
      // AES-GCM first (see ciphers.ts); OpenSSH's other default ciphers stay as fallbacks.
      '-o',
      `Ciphers=${openSshCipherOrder}`,
      '-o',
      // ssh gives up on an unreachable target by itself, well before readyTimeoutMs.
      `ConnectTimeout=${connectTimeoutSeconds}`,
      // A target that vanishes ends ssh after about 60 s instead of leaving a dead forward.
      '-o',
      'ServerAliveInterval=15',
      '-o',
      'ServerAliveCountMax=4',
      '-i',
      spec.identityFile,
      '-p',
      String(spec.targetSshPort),
      '-L',
      `127.0.0.1:${this.port}:localhost:${spec.remotePort}`,
      `${spec.targetUser}@${spec.targetAddress}`,
    ];
  }

  /** Starts ssh and waits for its forward; resolves 'port-taken' when the local port is in use. */
  async start(): Promise<'ready' | 'port-taken'> {
    const channel = await this.source.execStream([
      'sh',
      '-c',
      wrapperScript,
      wrapperName,
      ...this.#sshArgv(),
    ]);
    this.#channel = channel;
    let stdout = '';
    let listening = false;
    let inSession = false;
    let timedOut = false;

    return new Promise<'ready' | 'port-taken'>((resolve, reject) => {
      let settled = false;
      const settle = (outcome: 'ready' | 'port-taken' | FerryError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (outcome instanceof FerryError) reject(outcome);
        else resolve(outcome);
      };
      const checkReady = (): void => {
        if (listening && inSession && this.remotePid > 0) {
          this.source.once('close', this.#onSourceClose);
          this.spec.logger?.debug(this.#fields(), 'Direct tunnel listening');
          settle('ready');
        }
      };
      const timer = setTimeout(() => {
        timedOut = true;
        const error = new FerryError(
          'SSH_TIMEOUT',
          `Direct tunnel on '${this.source.target.name}' did not get ready within ${this.readyTimeoutMs} ms. ${this.#stderr.text()}`.trim(),
          { context: { host: this.source.target.name, phase: 'tunnel', stderr: this.#stderr.text() } },
        );
        void this.close()
          .catch(() => undefined)
          .then(() => settle(error));
      }, this.readyTimeoutMs);

      channel.setEncoding('utf8');
      channel.on('data', (chunk: string) => {
        if (this.remotePid !== 0) return;
        stdout += chunk;
        const match = pidLine.exec(stdout);
        if (match !== null) {
          this.remotePid = Number(match[1]);
          checkReady();
        }
      });
      channel.stderr.setEncoding('utf8');
      channel.stderr.on('data', (chunk: string) =>
        this.#stderr.add(chunk, (line) => {
          const negotiated = cipherLine.exec(line);
          if (negotiated !== null) this.cipher = negotiated[1];
          const bound = listeningLine.exec(line);
          if (bound !== null && Number(bound[1]) === this.port) listening = true;
          if (sessionLine.test(line)) {
            inSession = true;
            checkReady();
          }
          const failed = openFailedLine.exec(line);
          if (failed !== null) this.#recordOpenFailure(failed[1] ?? '');
        }),
      );
      void channel.exitStatus.then((status) => {
        if (status === undefined) return;
        if (!settled) {
          // Ending stdin lets the wrapper's watcher finish, so that the channel closes.
          channel.end();
          return;
        }
        if (this.#closing === undefined) {
          this.#record(classifySshExit(this.#stderr.text(), status.code, this.#hop));
        }
      });
      // Deciding on 'close' rather than on the exit frees the session slot before another port is tried.
      channel.on('close', () => {
        // After a timeout, close() ends the channel and the timer settles once it is done.
        if (settled || timedOut) return;
        if (this.source.closed) {
          settle(
            new FerryError(
              'SSH_DISCONNECTED',
              `The connection to '${this.source.target.name}' closed while the direct tunnel started.`,
              {
                context: { host: this.source.target.name, phase: 'tunnel' },
                cause: this.source.closeReason,
              },
            ),
          );
          return;
        }
        void channel.exitStatus.then((status) => {
          const stderr = this.#stderr.text();
          const portTaken = stderr.includes(`bind [127.0.0.1]:${this.port}: Address already in use`);
          settle(portTaken ? 'port-taken' : classifySshExit(stderr, status?.code ?? null, this.#hop));
        });
      });
    });
  }

  async close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.source.off('close', this.#onSourceClose);
    const channel = this.#channel;
    if (channel !== undefined) await endChannel(channel);
    if (this.remotePid === 0) return;

    // The connection is gone: sshd closed the channel's stdin with it, so the wrapper's watcher
    // has ended ssh, and there is no way left to check.
    if (this.source.closed) return;
    const mark = `127.0.0.1:${this.port}:localhost:${this.spec.remotePort}`;
    const result = await this.source.exec(
      ['sh', '-c', reapScript, 'ferry-reap', String(this.remotePid), mark],
      {
        timeoutMs: 15_000,
      },
    );
    if (result.stdout.trim() !== 'gone') {
      const error = new FerryError(
        'TUNNEL_FAILED',
        `The ssh process ${this.remotePid} of the direct tunnel on '${this.source.target.name}' survived SIGTERM and SIGKILL.`,
        {
          context: {
            host: this.source.target.name,
            pid: this.remotePid,
            stdout: result.stdout,
            stderr: result.stderr,
          },
        },
      );
      this.spec.logger?.warn({ ...this.#fields(), err: error }, 'Direct tunnel ssh process survived');
      throw error;
    }
    this.spec.logger?.debug(this.#fields(), 'Direct tunnel closed');
  }

  readonly #onSourceClose = (): void => {
    this.#record(
      new FerryError(
        'SSH_DISCONNECTED',
        `The connection to '${this.source.target.name}' closed, ending the direct tunnel.`,
        {
          context: { host: this.source.target.name, phase: 'tunnel' },
          cause: this.source.closeReason,
        },
      ),
    );
  };

  /** Turns `open failed: <reason>` from ssh into the tunnel's lastError. */
  #recordOpenFailure(reason: string): void {
    const prohibited = reason.startsWith('administratively prohibited');
    this.#record(
      new FerryError(
        prohibited ? 'FORWARDING_PROHIBITED' : 'TUNNEL_FAILED',
        `A connection through the direct tunnel on '${this.source.target.name}' failed: the target ` +
          `${this.spec.targetAddress} could not connect to localhost:${this.spec.remotePort} (${reason}).`,
        { context: { host: this.source.target.name, phase: 'tunnel', reason } },
      ),
    );
  }

  #record(error: unknown): void {
    this.lastError = isFerryError(error)
      ? error
      : new FerryError('TUNNEL_FAILED', String(error), { cause: error });
    this.spec.logger?.warn({ ...this.#fields(), err: this.lastError }, 'Direct tunnel failure');
  }

  #fields(): Record<string, unknown> {
    return {
      host: this.source.target.name,
      target: `${this.spec.targetAddress}:${this.spec.targetSshPort}`,
      port: this.port,
      remotePort: this.spec.remotePort,
      pid: this.remotePid,
    };
  }
}

/** Time the wrapper gets to end ssh and exit after its stdin closes. */
const wrapperExitGraceMs = 3000;

/**
 * Ends the channel's stdin, which makes the wrapper kill ssh and exit, and waits for the
 * channel to close. After wrapperExitGraceMs it closes the channel itself.
 */
async function endChannel(channel: ClientChannel): Promise<void> {
  await new Promise<void>((resolve) => {
    if (channel.destroyed || channel.readableEnded) {
      resolve();
      return;
    }
    const timer = setTimeout(() => {
      channel.close();
      resolve();
    }, wrapperExitGraceMs);
    timer.unref();
    channel.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    channel.resume();
    channel.stderr.resume();
    channel.end();
  });
}

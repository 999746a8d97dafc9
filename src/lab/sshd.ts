import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { killTree, waitForExit } from './processes.js';

export interface SshdOptions {
  /** Lab host name, used in log lines and the FERRY_LAB_HOST session variable. */
  name: string;
  address: string;
  port: number;
  /** Folder for sshd_config, the pid file and the log; must exist. */
  dir: string;
  hostKeyPath: string;
  authorizedKeysPath: string;
  loginUser: string;
  allowTcpForwarding: boolean;
  /** Set in every session's environment, so that the lab can find the processes it caused. */
  labId: string;
}

const sshdBinary = '/usr/sbin/sshd';

/** Writes the sshd_config of one lab host. */
function writeConfig(options: SshdOptions): string {
  const configPath = join(options.dir, 'sshd_config');
  const lines = [
    `# sshd for lab host ${options.name}; written by the ferry lab.`,
    `ListenAddress ${options.address}:${options.port}`,
    `HostKey ${options.hostKeyPath}`,
    `PidFile ${join(options.dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${options.authorizedKeysPath}`,
    `AllowUsers ${options.loginUser}`,
    'PermitRootLogin no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // The lab folders live under the temporary folder, which is world-writable.
    'StrictModes no',
    `AllowTcpForwarding ${options.allowTcpForwarding ? 'yes' : 'no'}`,
    'X11Forwarding no',
    'PrintMotd no',
    'PrintLastLog no',
    'LogLevel VERBOSE',
    `SetEnv FERRY_LAB_HOST=${options.name} FERRY_LAB_ID=${options.labId}`,
  ];
  writeFileSync(configPath, `${lines.join('\n')}\n`);
  return configPath;
}

/** A running sshd of one lab host. */
export class LabSshd {
  #child: ChildProcess | undefined;
  #log = '';

  constructor(readonly options: SshdOptions) {}

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The last lines sshd wrote to its log (stderr with -e). */
  get log(): string {
    return this.#log;
  }

  async start(): Promise<void> {
    if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const configPath = writeConfig(this.options);
    const child = spawn(sshdBinary, ['-D', '-e', '-f', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    const listening = `Server listening on ${this.options.address} port ${this.options.port}`;

    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error('sshd did not start listening within 10 s')), 10_000);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        reject(new Error(`Lab host ${this.options.name}: ${error.message}.\nsshd log:\n${this.#log}`));
      };
      child.stderr?.on('data', (chunk: Buffer) => {
        this.#log = (this.#log + chunk.toString()).slice(-20_000);
        if (this.#log.includes(listening)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => fail(new Error(`sshd exited with code ${code}`)));
      child.once('error', fail);
    });
  }

  /** Ends the listener and every session process it started. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child?.pid === undefined) return;
    await killTree(child.pid);
    await waitForExit([child.pid], 2000);
  }

  /** Sends SIGKILL to the listener and all its sessions at once, as a crash would. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child?.pid === undefined) return;
    await killTree(child.pid, 0);
  }
}

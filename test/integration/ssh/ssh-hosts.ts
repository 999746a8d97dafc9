/**
 * Test bed for the SSH layer: real OpenSSH sshd instances on their own loopback addresses,
 * one client key pair authorized on all of them, and an SshTarget per host.
 */

import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

import { ensureLabAccount, type LabAccount } from '../../../src/lab/account.js';
import { generateKeyPair, type KeyPair } from '../../../src/lab/keys.js';
import { findFreePort } from '../../../src/lab/ports.js';
import { isAlive, killTree, processesWithEnv } from '../../../src/lab/processes.js';
import { LabSshd } from '../../../src/lab/sshd.js';
import type { SshTarget } from '../../../src/ssh/connection.js';

export interface TestHost {
  name: string;
  address: string;
  port: number;
  hostKey: KeyPair;
  sshd: LabSshd;
  /** A target that pins the host key by fingerprint and logs in with the client key. */
  target: SshTarget;
}

export interface HostSpec {
  name: string;
  /** sshd's AllowTcpForwarding. Default true. */
  allowTcpForwarding?: boolean;
}

export class SshTestBed {
  readonly hosts: TestHost[] = [];
  readonly labId = randomBytes(6).toString('hex');
  readonly authorizedKeysPath: string;
  readonly clientKey: KeyPair;
  readonly account: LabAccount;

  private constructor(readonly dir: string) {
    this.account = ensureLabAccount();
    mkdirSync(join(dir, 'client'), { mode: 0o700 });
    this.clientKey = generateKeyPair(join(dir, 'client', 'id_ed25519'), 'ferry-ssh-tests');
    this.authorizedKeysPath = join(dir, 'authorized_keys');
    writeFileSync(this.authorizedKeysPath, `${this.clientKey.publicLine}\n`, { mode: 0o644 });
  }

  /** Starts one sshd per spec on 127.0.0.2, .3, ... */
  static async start(specs: HostSpec[]): Promise<SshTestBed> {
    const dir = mkdtempSync(join(tmpdir(), 'ssh-layer-test-'));
    // The login account reads authorized_keys and, in direct-mode tests, its key and known_hosts here.
    chmodSync(dir, 0o755);
    const bed = new SshTestBed(dir);
    try {
      for (const [index, spec] of specs.entries()) await bed.#startHost(spec, `127.0.0.${index + 2}`);
    } catch (error) {
      await bed.stop();
      throw error;
    }
    return bed;
  }

  host(name: string): TestHost {
    const host = this.hosts.find((candidate) => candidate.name === name);
    if (host === undefined) throw new Error(`No test host named '${name}'.`);
    return host;
  }

  /** Adds a public key line to the authorized_keys that every test sshd reads. */
  authorize(publicLine: string): void {
    appendFileSync(this.authorizedKeysPath, `${publicLine}\n`);
  }

  /** Pids of processes that sessions on the test sshds started and that are still alive. */
  sessionProcesses(): number[] {
    return processesWithEnv('FERRY_LAB_ID', this.labId);
  }

  /** Stops every sshd and every session process, removes the folder, and throws if anything is left. */
  async stop(): Promise<void> {
    const pids = this.hosts.flatMap((host) => (host.sshd.pid === undefined ? [] : [host.sshd.pid]));
    for (const host of this.hosts) await host.sshd.stop();
    for (const pid of this.sessionProcesses()) await killTree(pid, 500);
    rmSync(this.dir, { recursive: true, force: true });
    const left = [...pids.filter(isAlive), ...this.sessionProcesses()];
    if (left.length > 0) throw new Error(`SSH test bed left processes behind: ${left.join(', ')}`);
  }

  async #startHost(spec: HostSpec, address: string): Promise<void> {
    const hostDir = join(this.dir, spec.name);
    mkdirSync(hostDir, { mode: 0o755 });
    const hostKey = generateKeyPair(join(hostDir, 'ssh_host_ed25519_key'), spec.name);
    // findFreePort can race with other test files; a second port fixes that.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const port = await findFreePort(address);
      const sshd = new LabSshd({
        name: spec.name,
        address,
        port,
        dir: hostDir,
        hostKeyPath: hostKey.privatePath,
        authorizedKeysPath: this.authorizedKeysPath,
        loginUser: this.account.user,
        allowTcpForwarding: spec.allowTcpForwarding ?? true,
        labId: this.labId,
      });
      try {
        await sshd.start();
      } catch (error) {
        lastError = error;
        await sshd.stop();
        continue;
      }
      const target: SshTarget = {
        name: spec.name,
        address,
        port,
        user: this.account.user,
        identityFile: this.clientKey.privatePath,
        hostKey: hostKey.fingerprint,
      };
      this.hosts.push({ name: spec.name, address, port, hostKey, sshd, target });
      return;
    }
    throw lastError;
  }
}

/** Returns true when /proc/net/tcp lists a listening socket on `address:port`; it never connects. */
export async function isListeningOn(address: string, port: number): Promise<boolean> {
  const table = await readFile('/proc/net/tcp', 'utf8');
  const hexAddress = address
    .split('.')
    .map((octet) => Number(octet).toString(16).padStart(2, '0').toUpperCase())
    .reverse()
    .join('');
  const local = `${hexAddress}:${port.toString(16).padStart(4, '0').toUpperCase()}`;
  // Column 2 is local_address, column 4 the state; 0A is LISTEN.
  return table
    .split('\n')
    .slice(1)
    .some((line) => {
      const columns = line.trim().split(/\s+/);
      return columns[1] === local && columns[3] === '0A';
    });
}

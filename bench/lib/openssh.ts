/**
 * OpenSSH clients started by hand, as the hand-run recipe does: `ssh -N -L` for a forward to
 * the target, `ssh -N -R` for a listener on the source. Each runs with -v, from which the
 * negotiated cipher and the forward's readiness are read.
 */
import { spawn, type ChildProcess } from 'node:child_process';

import { cipherLine } from '../../src/ssh/direct-script.js';

export interface OpenSshHop {
  address: string;
  port: number;
  user: string;
  identityFile: string;
  knownHostsFile: string;
}

export interface OpenSshForwardSpec {
  hop: OpenSshHop;
  /** `-L` (listen here, connect from the host) or `-R` (listen on the host, connect from here). */
  direction: '-L' | '-R';
  /** The forward, such as `127.0.0.1:20001:127.0.0.1:8002`. */
  forward: string;
  /** OpenSSH's `Ciphers` option; default: OpenSSH's own order. */
  ciphers?: string;
}

export interface OpenSshForward {
  readonly pid: number;
  /** Cipher negotiated for the client-to-server direction. */
  readonly cipher: string | undefined;
  close(): Promise<void>;
}

const readyTimeoutMs = 15_000;

/** Starts ssh and resolves once its forward is set up; rejects with ssh's output otherwise. */
export async function startOpenSshForward(spec: OpenSshForwardSpec): Promise<OpenSshForward> {
  const { hop } = spec;
  const args = [
    // No user or system configuration, so that the figures do not depend on this machine's.
    '-F',
    '/dev/null',
    '-N',
    '-v',
    '-o',
    'ExitOnForwardFailure=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${hop.knownHostsFile}`,
    '-o',
    'IdentitiesOnly=yes',
    ...(spec.ciphers === undefined ? [] : ['-o', `Ciphers=${spec.ciphers}`]),
    '-i',
    hop.identityFile,
    '-p',
    String(hop.port),
    spec.direction,
    spec.forward,
    `${hop.user}@${hop.address}`,
  ];
  const child = spawn('/usr/bin/ssh', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  let cipher: string | undefined;
  // -L is ready once ssh enters its session loop, -R once sshd confirmed the listener.
  const readyLine =
    spec.direction === '-L' ? /^debug1: Entering interactive session\./m : /remote forward success for:/;

  await new Promise<void>((resolve, reject) => {
    let partial = '';
    let settled = false;
    const fail = (message: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(
        new Error(
          `ssh ${spec.direction} ${spec.forward} to ${hop.address}: ${message}\n${output.slice(-2000)}`,
        ),
      );
    };
    const timer = setTimeout(() => fail(`not ready within ${readyTimeoutMs} ms`), readyTimeoutMs);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        // -v keeps printing a line per forwarded connection; only the start is kept.
        if (output.length < 20_000) output += `${line}\n`;
        const negotiated = cipherLine.exec(line);
        if (negotiated !== null) cipher = negotiated[1];
        if (!settled && readyLine.test(line)) {
          settled = true;
          clearTimeout(timer);
          resolve();
        }
      }
    });
    child.once('exit', (code) => fail(`ssh exited with code ${code}`));
    child.once('error', (error) => fail(error.message));
  });

  return {
    pid: child.pid as number,
    get cipher() {
      return cipher;
    },
    close: () => stopChild(child),
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

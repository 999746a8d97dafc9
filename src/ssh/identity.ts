/**
 * Client credentials for SSH logins: a private key file on the bastion or an ssh-agent socket.
 * Problems with them surface as AUTH_FAILED before any connection is made, with a message
 * that names the file or socket.
 */

import { readFile } from 'node:fs/promises';

import ssh2 from 'ssh2';

import { FerryError } from '../errors.js';

/** Credentials in the form ssh2's connect() takes; exactly one of the two fields is set. */
export interface Credentials {
  privateKey?: Buffer;
  /** Path of the ssh-agent socket. */
  agent?: string;
}

/** The part of a target that selects its credentials. */
export interface CredentialSource {
  name: string;
  identityFile?: string;
  agent?: true | string;
}

/**
 * Reads and parses a private key file. Throws AUTH_FAILED naming the path when the file is
 * missing or unreadable, contains no private key, or is protected by a passphrase. ferry
 * runs unattended and never prompts for a passphrase, so such keys belong in an agent.
 */
export async function loadIdentityFile(path: string, host?: string): Promise<Buffer> {
  const context = { host, identityFile: path };
  let key: Buffer;
  try {
    key = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const problem =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EACCES'
          ? 'cannot be read by this process (permission denied)'
          : `cannot be read (${code ?? String(error)})`;
    throw new FerryError(
      'AUTH_FAILED',
      `Identity file ${path} ${problem}; fix identityFile in the inventory.`,
      {
        context,
        cause: error,
      },
    );
  }

  const parsed = ssh2.utils.parseKey(key);
  const first = Array.isArray(parsed) ? parsed[0] : parsed;
  if (first === undefined || first instanceof Error || first.isPrivateKey() !== true) {
    const reason = first instanceof Error ? first.message : 'it contains no private key';
    throw new FerryError(
      'AUTH_FAILED',
      `Identity file ${path} cannot be used: ${reason}. Give a private key without a passphrase, or load the key into an ssh-agent and set agent instead.`,
      { context, cause: first instanceof Error ? first : undefined },
    );
  }
  return key;
}

/** Resolves a target's identityFile or agent setting into what ssh2 needs. */
export async function loadCredentials(source: CredentialSource): Promise<Credentials> {
  if (source.identityFile !== undefined) {
    return { privateKey: await loadIdentityFile(source.identityFile, source.name) };
  }
  if (typeof source.agent === 'string') return { agent: source.agent };
  if (source.agent === true) {
    const socket = process.env['SSH_AUTH_SOCK'];
    if (socket === undefined || socket === '') {
      throw new FerryError(
        'AUTH_FAILED',
        `Host '${source.name}' uses the ssh-agent, but SSH_AUTH_SOCK is not set; start an agent or set agent to its socket path.`,
        { context: { host: source.name } },
      );
    }
    return { agent: socket };
  }
  throw new FerryError(
    'AUTH_FAILED',
    `Host '${source.name}' has no credentials: set identityFile or agent in the inventory.`,
    { context: { host: source.name } },
  );
}

/** Describes the credentials for error messages, never including key material. */
export function describeCredentials(source: CredentialSource): string {
  if (source.identityFile !== undefined) return `key ${source.identityFile}`;
  if (typeof source.agent === 'string') return `the keys of the agent at ${source.agent}`;
  return 'the keys of the agent at SSH_AUTH_SOCK';
}

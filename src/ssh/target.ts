/**
 * Address, login and host key pin of one SSH host. The inventory's host config is a
 * structural superset of it. Set exactly one of identityFile and agent, and exactly one of
 * hostKey and knownHostsFile.
 */
export interface SshTarget {
  /** Host name in the inventory; used in messages and as the pool's key. */
  name: string;
  address: string;
  port: number;
  user: string;
  /** Private key file on the bastion. */
  identityFile?: string;
  /** Use the ssh-agent at SSH_AUTH_SOCK (true) or at this socket path. */
  agent?: true | string;
  /** Pinned host key as an OpenSSH fingerprint, `SHA256:<43 base64 characters>`. */
  hostKey?: string;
  /** known_hosts file that lists the host's key. */
  knownHostsFile?: string;
}

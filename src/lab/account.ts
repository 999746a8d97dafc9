import { execFileSync } from 'node:child_process';
import { userInfo } from 'node:os';

/** The non-root account that lab hosts accept SSH logins for. */
export interface LabAccount {
  user: string;
  uid: number;
  gid: number;
}

const labUser = 'ferrylab';

function lookup(user: string): LabAccount | undefined {
  try {
    const line = execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).trim();
    const fields = line.split(':');
    return { user, uid: Number(fields[2]), gid: Number(fields[3]) };
  } catch {
    return undefined;
  }
}

/**
 * Returns the lab's login account. As root it is `ferrylab`, created on first use with the
 * password field `*`: OpenSSH without PAM treats a `!` (locked) account as unable to log in
 * even by key. Without root, sshd can only log in the user it runs as, so that user is used.
 */
export function ensureLabAccount(): LabAccount {
  const self = userInfo();
  if (self.uid !== 0) return { user: self.username, uid: self.uid, gid: self.gid };

  const existing = lookup(labUser);
  if (existing !== undefined) return existing;
  try {
    execFileSync(
      'useradd',
      ['--create-home', '--shell', '/bin/bash', '--comment', 'ferry lab hosts', labUser],
      {
        stdio: 'pipe',
      },
    );
  } catch (error) {
    // Two test files may create the account at the same moment; the loser finds it afterwards.
    if (lookup(labUser) === undefined) throw error;
  }
  execFileSync('usermod', ['--password', '*', labUser], { stdio: 'pipe' });
  const created = lookup(labUser);
  if (created === undefined) throw new Error(`useradd did not create the lab account '${labUser}'.`);
  return created;
}

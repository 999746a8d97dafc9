import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  findKnownHostKeys,
  fingerprintOfKey,
  fingerprintOfPublicKey,
  knownHostsName,
  readKnownHostKeys,
} from '../../../src/ssh/fingerprint.js';
import { keyTypeOf } from '../../../src/ssh/host-key.js';

interface TestKey {
  publicLine: string;
  /** What `ssh-keygen -lf` prints as the fingerprint. */
  expected: string;
}

let dir: string;
const keys: Record<string, TestKey> = {};

function generate(name: string, type: string, bits?: number): TestKey {
  const path = join(dir, name);
  const args = [
    '-q',
    '-t',
    type,
    '-N',
    '',
    '-C',
    name,
    '-f',
    path,
    ...(bits === undefined ? [] : ['-b', String(bits)]),
  ];
  execFileSync('ssh-keygen', args);
  const listing = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${path}.pub`], {
    encoding: 'utf8',
  });
  const expected = listing.split(' ')[1] ?? '';
  return { publicLine: readFileSync(`${path}.pub`, 'utf8').trim(), expected };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssh-layer-fingerprint-'));
  keys['ed25519'] = generate('ed25519', 'ed25519');
  keys['ecdsa'] = generate('ecdsa', 'ecdsa');
  keys['rsa'] = generate('rsa', 'rsa', 2048);
  keys['other'] = generate('other', 'ed25519');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function key(name: string): TestKey {
  const found = keys[name];
  if (found === undefined) throw new Error(`no test key ${name}`);
  return found;
}

describe('fingerprintOfPublicKey', () => {
  for (const name of ['ed25519', 'ecdsa', 'rsa']) {
    it(`matches ssh-keygen -lf for ${name}`, () => {
      expect(key(name).expected).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
      expect(fingerprintOfPublicKey(key(name).publicLine)).toBe(key(name).expected);
    });
  }

  it('rejects text that is not a public key', () => {
    expect(() => fingerprintOfPublicKey('not a key')).toThrow(/Invalid OpenSSH public key/);
  });
});

describe('fingerprintOfKey', () => {
  it('hashes the raw blob as hostVerifier receives it', () => {
    const blob = Buffer.from(key('ed25519').publicLine.split(' ')[1] ?? '', 'base64');
    expect(fingerprintOfKey(blob)).toBe(key('ed25519').expected);
  });

  it('reads the key type from the blob', () => {
    const blob = Buffer.from(key('rsa').publicLine.split(' ')[1] ?? '', 'base64');
    expect(keyTypeOf(blob)).toBe('ssh-rsa');
    expect(keyTypeOf(Buffer.alloc(2))).toBe('unknown');
  });
});

describe('knownHostsName', () => {
  it('uses the bare address for port 22', () => {
    expect(knownHostsName('xen-a.example', 22)).toBe('xen-a.example');
  });

  it('uses brackets for other ports', () => {
    expect(knownHostsName('127.0.0.3', 2222)).toBe('[127.0.0.3]:2222');
  });
});

describe('findKnownHostKeys', () => {
  const keyPart = (name: string): string => key(name).publicLine.split(' ').slice(0, 2).join(' ');

  it('finds a plain entry on port 22', () => {
    const text = `xen-a ${keyPart('ed25519')}\n`;
    expect(findKnownHostKeys(text, 'xen-a', 22).trusted).toEqual([key('ed25519').expected]);
    expect(findKnownHostKeys(text, 'xen-b', 22).trusted).toEqual([]);
  });

  it('requires the bracket form for other ports', () => {
    const text = `127.0.0.3 ${keyPart('ed25519')}\n[127.0.0.3]:2222 ${keyPart('ecdsa')}\n`;
    expect(findKnownHostKeys(text, '127.0.0.3', 2222).trusted).toEqual([key('ecdsa').expected]);
    expect(findKnownHostKeys(text, '127.0.0.3', 22).trusted).toEqual([key('ed25519').expected]);
  });

  it('reads comma lists and every key type of a host', () => {
    const text = [
      `# comment line`,
      ``,
      `xen-a,10.0.0.5,[10.0.0.5]:2200 ${keyPart('ed25519')} comment words`,
      `10.0.0.5 ${keyPart('rsa')}`,
    ].join('\n');
    expect(findKnownHostKeys(text, '10.0.0.5', 22).trusted).toEqual([
      key('ed25519').expected,
      key('rsa').expected,
    ]);
    expect(findKnownHostKeys(text, '10.0.0.5', 2200).trusted).toEqual([key('ed25519').expected]);
    expect(findKnownHostKeys(text, 'XEN-A', 22).trusted).toEqual([key('ed25519').expected]);
  });

  it('applies wildcards and negations', () => {
    const text = `*.lab.example,!bad.lab.example ${keyPart('ed25519')}\nxen-? ${keyPart('ecdsa')}\n`;
    expect(findKnownHostKeys(text, 'good.lab.example', 22).trusted).toEqual([key('ed25519').expected]);
    expect(findKnownHostKeys(text, 'bad.lab.example', 22).trusted).toEqual([]);
    expect(findKnownHostKeys(text, 'xen-a', 22).trusted).toEqual([key('ecdsa').expected]);
    expect(findKnownHostKeys(text, 'xen-ab', 22).trusted).toEqual([]);
  });

  it('matches entries hashed by ssh-keygen -H', () => {
    const path = join(dir, 'known_hosts_hashed');
    writeFileSync(path, `[127.0.0.3]:2222 ${keyPart('ed25519')}\nxen-b ${keyPart('ecdsa')}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', path], { stdio: 'pipe' });
    const text = readFileSync(path, 'utf8');
    expect(text).toMatch(/^\|1\|/);
    expect(text).not.toContain('127.0.0.3');

    expect(findKnownHostKeys(text, '127.0.0.3', 2222).trusted).toEqual([key('ed25519').expected]);
    expect(findKnownHostKeys(text, 'xen-b', 22).trusted).toEqual([key('ecdsa').expected]);
    expect(findKnownHostKeys(text, '127.0.0.3', 22).trusted).toEqual([]);
  });

  it('never trusts @revoked or @cert-authority lines', () => {
    const text = [
      `@revoked xen-a ${keyPart('other')}`,
      `@cert-authority *.example ${keyPart('rsa')}`,
      `xen-a ${keyPart('ed25519')}`,
    ].join('\n');
    const found = findKnownHostKeys(text, 'xen-a', 22);
    expect(found.trusted).toEqual([key('ed25519').expected]);
    expect(found.revoked).toEqual([key('other').expected]);
    expect(findKnownHostKeys(text, 'ca.example', 22).trusted).toEqual([]);
  });

  it('skips malformed lines', () => {
    const text = [
      'xen-a',
      'xen-a ssh-ed25519',
      'xen-a ssh-ed25519 !!!notbase64',
      `xen-a ${keyPart('ed25519')}`,
    ].join('\n');
    expect(findKnownHostKeys(text, 'xen-a', 22).trusted).toEqual([key('ed25519').expected]);
  });

  it('agrees with ssh-keygen -F on a written file', async () => {
    const path = join(dir, 'known_hosts_plain');
    writeFileSync(path, `[127.0.0.4]:4022 ${keyPart('rsa')}\n`);
    const found = execFileSync('ssh-keygen', ['-F', '[127.0.0.4]:4022', '-f', path], { encoding: 'utf8' });
    expect(found).toContain(keyPart('rsa'));
    expect((await readKnownHostKeys(path, '127.0.0.4', 4022)).trusted).toEqual([key('rsa').expected]);
  });

  it('rejects with ENOENT for a missing file', async () => {
    await expect(readKnownHostKeys(join(dir, 'missing'), 'xen-a', 22)).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});

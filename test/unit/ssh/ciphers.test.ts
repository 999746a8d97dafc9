import { describe, expect, it } from 'vitest';

import { cpuinfoHasAes, openSshCipherOrder, ssh2CipherOrder } from '../../../src/ssh/ciphers.js';

describe('cpuinfoHasAes', () => {
  it('finds aes among x86 flags', () => {
    const text = 'processor\t: 0\nflags\t\t: fpu vme sse2 aes avx\n\nprocessor\t: 1\nflags\t\t: fpu aes\n';
    expect(cpuinfoHasAes(text)).toBe(true);
  });

  it('finds aes among ARM features', () => {
    expect(cpuinfoHasAes('Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n')).toBe(true);
  });

  it('reports a CPU without aes', () => {
    expect(cpuinfoHasAes('flags\t\t: fpu vme sse2 avx aesx\n')).toBe(false);
  });

  it('returns undefined without flags', () => {
    expect(cpuinfoHasAes('processor\t: 0\nmodel name\t: something\n')).toBeUndefined();
  });
});

describe('ssh2CipherOrder', () => {
  it('puts AES-GCM first on a CPU with AES', () => {
    const order = ssh2CipherOrder(true);
    expect(order?.slice(0, 2)).toEqual(['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com']);
  });

  it('keeps the other ciphers as fallbacks', () => {
    expect(ssh2CipherOrder(true)).toEqual(
      expect.arrayContaining(['chacha20-poly1305@openssh.com', 'aes128-ctr', 'aes256-ctr']),
    );
  });

  it("keeps ssh2's order without AES", () => {
    expect(ssh2CipherOrder(false)).toBeUndefined();
  });
});

describe('openSshCipherOrder', () => {
  it('lists AES-GCM first and OpenSSH defaults after it', () => {
    expect(openSshCipherOrder.split(',')).toEqual([
      'aes128-gcm@openssh.com',
      'aes256-gcm@openssh.com',
      'chacha20-poly1305@openssh.com',
      'aes128-ctr',
      'aes192-ctr',
      'aes256-ctr',
    ]);
  });
});

import { describe, expect, it } from 'vitest';

import { tunnelPathIds, runTunnelBench } from '../../../bench/tunnels.js';
import { localCpuHasAes } from '../../../src/ssh/ciphers.js';

describe('tunnel benchmark smoke run', () => {
  it('measures every path with positive figures', async () => {
    const result = await runTunnelBench({ bytes: 4 * 2 ** 20, runs: 1 });

    expect(result.paths.map((path) => path.id)).toEqual([...tunnelPathIds]);
    for (const path of result.paths) {
      expect(path.runs, path.id).toHaveLength(1);
      expect(path.mbPerSecond, path.id).toBeGreaterThan(0);
      expect(Number.isFinite(path.mbPerSecond), path.id).toBe(true);
      expect(path.tunnelCpuSecondsPerGiB, path.id).toBeGreaterThanOrEqual(0);
      expect(path.endpointCpuSecondsPerGiB, path.id).toBeGreaterThanOrEqual(0);
    }
  });

  it('reports the negotiated ciphers', async () => {
    const result = await runTunnelBench({
      bytes: 2 ** 20,
      runs: 1,
      paths: ['tcp', 'openssh-recipe', 'ferry-relay', 'openssh-two-hop', 'ferry-direct'],
    });
    const cipher = (id: string) => result.paths.find((path) => path.id === id)?.cipher;

    expect(cipher('tcp')).toBeUndefined();
    expect(cipher('openssh-recipe')).toMatch(/^[a-z0-9-]+(@openssh\.com)?$/);
    expect(cipher('ferry-direct')).toBe('aes128-gcm@openssh.com');
    expect(cipher('openssh-two-hop')).toBe(cipher('ferry-relay'));
    if (localCpuHasAes() === true) expect(cipher('ferry-relay')).toBe('aes128-gcm@openssh.com');
  });
});

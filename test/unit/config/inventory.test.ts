import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadInventory, parseInventory, publicHostView } from '../../../src/config/inventory.js';
import { isFerryError } from '../../../src/errors.js';

const fingerprint = `SHA256:${'A'.repeat(43)}`;
const validHost = {
  address: '10.0.0.5',
  user: 'ferry',
  identityFile: '/etc/ferry/id_ed25519',
  hostKey: fingerprint,
};

function errorOf(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

describe('parseInventory', () => {
  it('fills defaults for a minimal host', () => {
    const host = parseInventory({ hosts: { 'xen-a': validHost } }).host('xen-a');
    expect(host.port).toBe(22);
    expect(host.relocationPort).toBe(8002);
    expect(host.driver).toBe('xm');
    expect(host.sudo).toBe(false);
    expect(host.commands.xm).toBe('/usr/sbin/xm');
  });

  it('names the field of a bad port', () => {
    const error = errorOf(() => parseInventory({ hosts: { 'xen-a': { ...validHost, port: 70000 } } }));
    expect(isFerryError(error, 'INVALID_INVENTORY')).toBe(true);
    expect(error.message).toContain('hosts.xen-a.port');
  });

  it('rejects a host without a pinned key', () => {
    const { hostKey: _omitted, ...unpinned } = validHost;
    const error = errorOf(() => parseInventory({ hosts: { 'xen-a': unpinned } }));
    expect(error.message).toContain('exactly one of hostKey and knownHostsFile');
  });

  it('rejects a malformed fingerprint', () => {
    const error = errorOf(() =>
      parseInventory({ hosts: { 'xen-a': { ...validHost, hostKey: 'SHA256:short' } } }),
    );
    expect(error.message).toContain('hosts.xen-a.hostKey');
  });

  it('rejects both identity file and agent', () => {
    const error = errorOf(() => parseInventory({ hosts: { 'xen-a': { ...validHost, agent: true } } }));
    expect(error.message).toContain('exactly one of identityFile and agent');
  });

  it('rejects a host name with shell characters', () => {
    const error = errorOf(() => parseInventory({ hosts: { 'xen-a;rm': validHost } }));
    expect(error.message).toMatch(/host names must match/);
  });

  it('rejects a relative command path', () => {
    const error = errorOf(() =>
      parseInventory({ hosts: { 'xen-a': { ...validHost, commands: { xm: 'xm' } } } }),
    );
    expect(error.message).toContain('hosts.xen-a.commands.xm: must be an absolute path');
  });

  it('rejects unknown keys', () => {
    const error = errorOf(() => parseInventory({ hosts: { 'xen-a': { ...validHost, pasword: 'x' } } }));
    expect(error.message).toContain('pasword');
  });

  it('reports an unknown host with the known ones', () => {
    const inventory = parseInventory({ hosts: { 'xen-a': validHost, 'xen-b': validHost } });
    const error = errorOf(() => inventory.host('xen-c'));
    expect(isFerryError(error, 'UNKNOWN_HOST')).toBe(true);
    expect(error.message).toContain('known: xen-a, xen-b');
  });

  it('keeps credentials out of the public view', () => {
    const view = publicHostView(parseInventory({ hosts: { 'xen-a': validHost } }).host('xen-a'));
    expect(JSON.stringify(view)).not.toContain('id_ed25519');
    expect(JSON.stringify(view)).not.toContain('SHA256');
  });
});

describe('loadInventory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-inventory-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a YAML file', () => {
    const path = join(dir, 'ok.yaml');
    writeFileSync(
      path,
      `hosts:\n  xen-a:\n    address: 10.0.0.5\n    user: ferry\n    identityFile: /k\n    hostKey: ${fingerprint}\n`,
    );
    expect(loadInventory(path).names()).toEqual(['xen-a']);
  });

  it('names a missing file and the fix', () => {
    const error = errorOf(() => loadInventory(join(dir, 'missing.yaml')));
    expect(error.message).toContain('missing.yaml');
    expect(error.message).toContain('--inventory');
  });

  it('reports invalid YAML', () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'hosts: [unclosed\n');
    expect(errorOf(() => loadInventory(path)).message).toMatch(/not valid YAML/);
  });
});

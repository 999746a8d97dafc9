import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { compileApiConfig, loadApiConfig } from '../../../producers/api/config.js';
import { bearerToken, generateToken, hashToken, TokenRegistry } from '../../../producers/api/tokens.js';
import { checkAllowedUrl, parseUrlPrefix, type UrlPrefix } from '../../../producers/callbacks/allow-list.js';
import { ProducerError } from '../../../producers/common/errors.js';
import { parseInventory } from '../../../src/config/inventory.js';
import { FerryError } from '../../../src/errors.js';

const host = (address: string) => ({
  address,
  user: 'ferry',
  identityFile: '/etc/ferry/id',
  hostKey: `SHA256:${'A'.repeat(43)}`,
});
const inventory = parseInventory({ hosts: { 'xen-a': host('10.0.0.1'), 'xen-b': host('10.0.0.2') } });
const digest = hashToken('ferry_example');

function configError(data: unknown, env: Record<string, string> = {}): string {
  try {
    compileApiConfig(data, inventory, env);
  } catch (error) {
    expect(error).toBeInstanceOf(FerryError);
    expect((error as FerryError).code).toBe('INVALID_CONFIG');
    return (error as FerryError).message;
  }
  throw new Error('compileApiConfig accepted the configuration');
}

describe('compileApiConfig', () => {
  const folder = mkdtempSync(join(tmpdir(), 'ferry-api-config-'));
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  it('fills defaults', () => {
    const settings = compileApiConfig({ tokens: [{ name: 'ops', sha256: digest }] }, inventory, {});
    expect(settings.listen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(settings.bodyLimitBytes).toBe(16_384);
    expect(settings.tokens[0]?.identity).toEqual({
      name: 'ops',
      dashboard: false,
      rateLimit: { max: 120, windowMs: 60_000 },
    });
    expect(settings.callbacks).toBeUndefined();
    expect(settings.slack).toBeUndefined();
  });

  it('reads secrets from the environment and files', () => {
    const secretFile = join(folder, 'slack-secret');
    writeFileSync(secretFile, 'from-file\nignored second line\n');
    const settings = compileApiConfig(
      {
        tokens: [
          {
            name: 'ops',
            sha256: digest.toUpperCase(),
            hosts: ['xen-a'],
            rateLimit: { max: 5, windowMs: 1_000 },
          },
        ],
        callbacks: { allow: ['https://tickets.example.com/hooks/'], secret: { env: 'CB_SECRET' } },
        slack: { signingSecret: { file: secretFile } },
        publicUrl: 'https://ferry.example.com/',
      },
      inventory,
      { CB_SECRET: 'from-env' },
    );
    expect(settings.callbacks?.secret).toBe('from-env');
    expect(settings.callbacks?.allow.map((prefix) => prefix.text)).toEqual([
      'https://tickets.example.com/hooks/',
    ]);
    expect(settings.slack?.signingSecret).toBe('from-file');
    expect(settings.slack?.responseUrlAllow.map((prefix) => prefix.text)).toEqual([
      'https://hooks.slack.com/',
    ]);
    expect(settings.publicUrl).toBe('https://ferry.example.com');
    expect([...(settings.tokens[0]?.identity.hosts ?? [])]).toEqual(['xen-a']);
  });

  it('names the field of every problem and never a secret', () => {
    expect(configError({ tokens: [] })).toContain('tokens: list at least one token');
    expect(configError({ tokens: [{ name: 'ops', sha256: 'abc' }] })).toContain(
      'tokens.0.sha256: must be 64 hex digits',
    );
    expect(configError({ tokens: [{ name: 'ops', sha256: digest, scopes: [] }] })).toContain('tokens.0');
    expect(configError({ tokens: [{ name: 'a b', sha256: digest }] })).toContain('tokens.0.name');
    expect(
      configError({
        tokens: [
          { name: 'ops', sha256: digest },
          { name: 'ops', sha256: hashToken('other') },
        ],
      }),
    ).toContain('"ops" is used by two tokens');
    expect(configError({ tokens: [{ name: 'ops', sha256: digest, hosts: ['xen-z'] }] })).toContain(
      'tokens.0.hosts: xen-z not in the inventory',
    );
    expect(
      configError({
        tokens: [{ name: 'ops', sha256: digest }],
        callbacks: { allow: ['ftp://x/'], secret: { env: 'S' } },
      }),
    ).toContain('callbacks.allow.0: must start with http:// or https://');
    const missing = configError({
      tokens: [{ name: 'ops', sha256: digest }],
      slack: { signingSecret: { env: 'FERRY_SLACK_SECRET' } },
    });
    expect(missing).toContain('slack.signingSecret: environment variable FERRY_SLACK_SECRET is not set');
    const unreadable = configError({
      tokens: [{ name: 'ops', sha256: digest }],
      slack: { signingSecret: { file: '/nonexistent/secret' } },
    });
    expect(unreadable).toContain('cannot read /nonexistent/secret (ENOENT)');
  });

  it('loads YAML files and reports unreadable ones', () => {
    const path = join(folder, 'api.yaml');
    writeFileSync(
      path,
      `listen:\n  port: 9090\ntokens:\n  - name: bot\n    sha256: ${digest}\n    dashboard: true\n`,
    );
    const settings = loadApiConfig(path, inventory, {});
    expect(settings.listen.port).toBe(9090);
    expect(settings.tokens[0]?.identity.dashboard).toBe(true);
    expect(() => loadApiConfig(join(folder, 'missing.yaml'), inventory, {})).toThrow(
      /Cannot read the API configuration/,
    );
  });
});

describe('API tokens', () => {
  it('generates distinct tokens of the documented form', () => {
    const first = generateToken();
    expect(first).toMatch(/^ferry_[A-Za-z0-9_-]{43}$/);
    expect(generateToken()).not.toBe(first);
  });

  it('finds the identity of a token by its digest', () => {
    const token = generateToken();
    const settings = compileApiConfig(
      {
        tokens: [
          { name: 'ops', sha256: hashToken('ferry_other') },
          { name: 'bot', sha256: hashToken(token) },
        ],
      },
      inventory,
      {},
    );
    const registry = new TokenRegistry(settings.tokens);
    expect(registry.authenticate(token)?.name).toBe('bot');
    expect(registry.authenticate(`${token}x`)).toBeUndefined();
    expect(registry.authenticate('')).toBeUndefined();
    expect(registry.authenticate('x'.repeat(10_000))).toBeUndefined();
    expect(registry.byName('ops')?.name).toBe('ops');
  });

  it('reads bearer headers', () => {
    expect(bearerToken('Bearer ferry_abc')).toBe('ferry_abc');
    expect(bearerToken('bearer  ferry_abc ')).toBe('ferry_abc');
    expect(bearerToken('Basic dXNlcjpwYXNz')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe('URL allow-lists', () => {
  const allowed = ['https://tickets.example.com/hooks/', 'http://127.0.0.1:8080/ferry'].map(
    (text) => parseUrlPrefix(text) as UrlPrefix,
  );

  it('accepts URLs under an entry', () => {
    for (const url of [
      'https://tickets.example.com/hooks/ferry',
      'https://TICKETS.example.com:443/hooks/a/b?x=1',
      'http://127.0.0.1:8080/ferry',
      'http://127.0.0.1:8080/ferry/results',
    ]) {
      expect(checkAllowedUrl(url, allowed, 'callbackUrl').href, url).toBeDefined();
    }
  });

  it('rejects URLs outside every entry, naming the field', () => {
    for (const url of [
      'https://tickets.example.com/hooksx',
      'https://tickets.example.com/hooks/../admin',
      'https://tickets.example.com/hooks/%2e%2e/admin',
      'http://tickets.example.com/hooks/ferry',
      'https://tickets.example.com:8443/hooks/ferry',
      'https://tickets.example.com.evil.test/hooks/ferry',
      'https://user:pw@tickets.example.com/hooks/ferry',
      'http://127.0.0.1:8080/ferryx',
      'http://127.0.0.1:8081/ferry',
      'file:///etc/passwd',
      'not a url',
    ]) {
      let error: unknown;
      try {
        checkAllowedUrl(url, allowed, 'callbackUrl');
      } catch (thrown) {
        error = thrown;
      }
      expect(error, url).toBeInstanceOf(ProducerError);
      expect((error as ProducerError).fields).toEqual(['callbackUrl']);
    }
  });

  it('rejects entries that cannot be prefixes', () => {
    expect(parseUrlPrefix('https://x.test/?a=1')).toBe('must not contain a query or fragment');
    expect(parseUrlPrefix('https://u:p@x.test/')).toBe('must not contain a user name or password');
    expect(parseUrlPrefix('x.test/hooks')).toBe('is not a URL');
  });
});

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

import { describe, expect, it } from 'vitest';

import { buildOpenApiDocument } from '../../../producers/api/openapi.js';
import { apiMigrationRequestSchema, splitMigrationBody } from '../../../producers/api/schemas.js';
import { namePattern } from '../../../src/config/inventory.js';
import { migrationRequestSchema } from '../../../src/jobs/request.js';

type Json = Record<string, unknown>;

describe('OpenAPI document', () => {
  const document = buildOpenApiDocument({ publicUrl: 'https://ferry.example.com' });
  const schemas = (document.components as Json).schemas as Record<string, Json>;

  it('describes the request fields the server accepts', () => {
    const request = schemas.MigrationRequest as Json;
    const properties = Object.keys(request.properties as Json).sort();
    const coreFields = Object.keys(migrationRequestSchema.shape).filter((field) => field !== 'requester');
    expect(properties).toEqual([...coreFields, 'callbackUrl'].sort());
    expect(request.required).toEqual(['vm', 'source', 'target']);
    expect(request.additionalProperties).toBe(false);
    expect(request.anyOf).toEqual([{ required: ['reason'] }, { required: ['ticket'] }]);
    // Every documented field passes the body check, and nothing else does.
    expect(() =>
      splitMigrationBody(Object.fromEntries(properties.map((field) => [field, 'x']))),
    ).not.toThrow();
    expect(() => splitMigrationBody({ requester: 'x' })).toThrow(/set from the API token/);
  });

  it('takes the name patterns from the validating schema', () => {
    const vm = ((schemas.MigrationRequest as Json).properties as Record<string, Json>).vm as Json;
    expect(vm.pattern).toBe(namePattern.source);
    expect(new RegExp(vm.pattern as string).test('web01')).toBe(true);
    expect(new RegExp(vm.pattern as string).test('web01;reboot')).toBe(false);
    expect(Object.keys(apiMigrationRequestSchema.shape)).toContain('callbackUrl');
  });

  it('lists every route with its responses', () => {
    const paths = document.paths as Record<string, Json>;
    expect(Object.keys(paths).sort()).toEqual([
      '/healthz',
      '/metrics',
      '/v1/chat',
      '/v1/chat/slack',
      '/v1/hosts',
      '/v1/migrations',
      '/v1/migrations/{id}',
      '/v1/migrations/{id}/events',
      '/v1/results',
      '/v1/results/ack',
    ]);
    const post = (paths['/v1/migrations'] as Json).post as Json;
    expect(Object.keys(post.responses as Json)).toEqual(
      expect.arrayContaining(['202', '400', '401', '403', '429']),
    );
    expect(Object.keys(post.callbacks as Json)).toEqual(['migrationFinished']);
    expect(document.servers).toEqual([{ url: 'https://ferry.example.com' }]);
    // Every reference points at a schema the document has.
    const references = JSON.stringify(document).match(/#\/components\/schemas\/[A-Za-z]+/g) ?? [];
    for (const reference of new Set(references)) {
      expect(schemas[reference.split('/').at(-1) as string], reference).toBeDefined();
    }
  });
});

/** Files under a folder, recursively. */
function filesUnder(folder: string): string[] {
  return readdirSync(folder).flatMap((name) => {
    const path = join(folder, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

describe('producers dependency direction', () => {
  it('never imports the migration, SSH or driver code', () => {
    const root = join(import.meta.dirname, '../../..');
    const offenders: string[] = [];
    for (const file of filesUnder(join(root, 'producers')).filter((path) => path.endsWith('.ts'))) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/from '([^']+)'|import\('([^']+)'\)/g)) {
        const target = match[1] ?? match[2] ?? '';
        if (/\/src\/(migration|ssh|drivers)\//.test(target)) {
          offenders.push(`${relative(root, file)} -> ${target}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});

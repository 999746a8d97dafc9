import { describe, expect, it } from 'vitest';

import { parseInventory } from '../../../src/config/inventory.js';
import { FerryError } from '../../../src/errors.js';
import { validateRequest } from '../../../src/jobs/request.js';

function labHost(address: string): Record<string, unknown> {
  return {
    address,
    port: 22,
    user: 'ferrylab',
    identityFile: '/tmp/x/id',
    hostKey: `SHA256:${'A'.repeat(43)}`,
    relocationPort: 8002,
  };
}

const inventory = parseInventory({ hosts: { 'xen-a': labHost('127.0.0.2'), 'xen-b': labHost('127.0.0.3') } });

const valid = { vm: 'web01', source: 'xen-a', target: 'xen-b', requester: 'alice', reason: 'kernel update' };

/** Runs validateRequest and returns the FerryError it throws; fails the test if it does not throw. */
function rejection(input: unknown): FerryError {
  try {
    validateRequest(input, inventory);
  } catch (error) {
    expect(error).toBeInstanceOf(FerryError);
    return error as FerryError;
  }
  throw new Error(`validateRequest accepted ${JSON.stringify(input)}`);
}

describe('validateRequest', () => {
  it('accepts a valid request and fills defaults', () => {
    const request = validateRequest(valid, inventory);
    expect(request).toEqual({ ...valid, options: { tunnel: 'relay', attempts: 3 } });
  });

  it('keeps explicit options and timeouts', () => {
    const request = validateRequest(
      {
        ...valid,
        ticket: 'CHG-1234',
        options: { tunnel: 'direct', attempts: 1, timeouts: { migrateMs: 600_000 } },
      },
      inventory,
    );
    expect(request.options).toEqual({ tunnel: 'direct', attempts: 1, timeouts: { migrateMs: 600_000 } });
    expect(request.ticket).toBe('CHG-1234');
  });

  it('accepts a ticket without a reason', () => {
    const { reason: _reason, ...withoutReason } = valid;
    expect(validateRequest({ ...withoutReason, ticket: 'CHG-1' }, inventory).ticket).toBe('CHG-1');
  });

  const badVmNames: Array<[string, string, string]> = [
    ['semicolon', 'web01;reboot', '"web01;reboot"'],
    ['command substitution', 'web$(id)', '"web$(id)"'],
    ['backticks', 'web`id`', '"web`id`"'],
    ['space', 'web 01', '"web 01"'],
    ['newline', 'web01\nrm', '"web01\\nrm"'],
    ['trailing newline', 'web01\n', '"web01\\n"'],
    ['leading dash', '-web01', '"-web01"'],
    ['65 characters', 'a'.repeat(65), '(65 characters)'],
    ['empty', '', '""'],
    ['bidi override', 'web\u202e01', '"web\\u202e01"'],
  ];
  it.each(badVmNames)('rejects a VM name with %s', (_case, vm, shown) => {
    const error = rejection({ ...valid, vm });
    expect(error.code).toBe('INVALID_REQUEST');
    expect(error.context.field).toBe('vm');
    expect(error.message).toContain('vm is invalid');
    expect(error.message).toContain(shown);
    expect(error.message).toContain('1 to 64 letters');
  });

  it('accepts a VM name of 64 characters', () => {
    expect(validateRequest({ ...valid, vm: 'a'.repeat(64) }, inventory).vm).toHaveLength(64);
  });

  it('cuts a long bad value in the message', () => {
    const error = rejection({ ...valid, vm: `;${'x'.repeat(500)}` });
    expect(error.message.length).toBeLessThan(400);
    expect(error.message).toContain('(501 characters)');
  });

  const badFields: Array<[string, Record<string, unknown>, string]> = [
    ['vm of the wrong type', { vm: 42 }, 'vm must be a string (got 42)'],
    ['bad source name', { source: 'xen a' }, 'source is invalid (got "xen a")'],
    ['bad target name', { target: 'xen;b' }, 'target is invalid (got "xen;b")'],
    ['requester with a space', { requester: 'bob smith' }, 'requester is invalid (got "bob smith")'],
    ['reason with a control character', { reason: 'a\u0007b' }, 'reason contains a control'],
    ['reason with a newline', { reason: 'line one\nline two' }, 'reason contains a control'],
    ['blank reason', { reason: '   ' }, 'reason is empty'],
    ['long reason', { reason: 'r'.repeat(501) }, 'reason is too long'],
    ['long ticket', { ticket: 't'.repeat(201) }, 'ticket is too long'],
    [
      'unknown tunnel',
      { options: { tunnel: 'ssh' } },
      'options.tunnel is not one of the allowed values (got "ssh")',
    ],
    ['zero attempts', { options: { attempts: 0 } }, 'options.attempts is too small (got 0)'],
    ['eleven attempts', { options: { attempts: 11 } }, 'options.attempts is too large (got 11)'],
    ['fractional attempts', { options: { attempts: 1.5 } }, 'options.attempts'],
    ['attempts as text', { options: { attempts: '3' } }, 'options.attempts must be a number (got "3")'],
    [
      'negative timeout',
      { options: { timeouts: { connectMs: -1 } } },
      'options.timeouts.connectMs is too small',
    ],
    [
      'huge timeout',
      { options: { timeouts: { migrateMs: 1e12 } } },
      'options.timeouts.migrateMs is too large',
    ],
  ];
  it.each(badFields)('rejects a %s, naming the field', (_case, change, expected) => {
    const error = rejection({ ...valid, ...change });
    expect(error.code).toBe('INVALID_REQUEST');
    expect(error.message).toContain(expected);
    expect(error.message).toMatch(/: (use|give) /);
  });

  it('rejects a missing field', () => {
    const { vm: _vm, ...withoutVm } = valid;
    const error = rejection(withoutVm);
    expect(error.message).toContain('vm is missing');
  });

  it('rejects unknown fields at each level', () => {
    const topLevel = rejection({ ...valid, address: '10.0.0.1' });
    expect(topLevel.message).toContain('unknown field "address"');
    expect(topLevel.context.field).toBe('address');

    const nested = rejection({ ...valid, options: { command: 'reboot' } });
    expect(nested.message).toContain('options has unknown field "command"');
    expect(nested.context.field).toBe('options.command');

    const timeouts = rejection({ ...valid, options: { timeouts: { totalMs: 5 } } });
    expect(timeouts.message).toContain('options.timeouts has unknown field "totalMs"');
  });

  it('rejects a request that is not an object', () => {
    for (const input of [null, 'web01', 42, ['web01']]) {
      expect(rejection(input).message).toContain('the request must be an object');
    }
  });

  it('rejects an unknown host, listing the known ones', () => {
    const error = rejection({ ...valid, target: 'xen-z' });
    expect(error.code).toBe('UNKNOWN_HOST');
    expect(error.context.field).toBe('target');
    expect(error.message).toContain('target "xen-z" is not in the inventory');
    expect(error.message).toContain('xen-a, xen-b');
  });

  it('rejects the same source and target', () => {
    const error = rejection({ ...valid, target: 'xen-a' });
    expect(error.code).toBe('INVALID_REQUEST');
    expect(error.context.field).toBe('target');
    expect(error.message).toContain('target is the same host as source');
  });

  it('rejects a request without reason and ticket', () => {
    const { reason: _reason, ...withoutReason } = valid;
    const error = rejection(withoutReason);
    expect(error.code).toBe('INVALID_REQUEST');
    expect(error.message).toContain('reason and ticket are both missing');
  });

  it('lists every bad field in one error', () => {
    const error = rejection({ ...valid, vm: 'a;b', options: { attempts: 0 } });
    expect(error.context.fields).toEqual(['vm', 'options.attempts']);
  });
});

import { Duplex } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { isFerryError } from '../../../src/errors.js';
import { vmStateOf } from '../../../src/drivers/qemu/monitor.js';
import { parseMemInfo } from '../../../src/drivers/qemu/parse.js';
import { QmpClient, QmpCommandError, type QmpEvent } from '../../../src/drivers/qemu/qmp.js';

const greeting = { QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } }, capabilities: [] } };

/**
 * A QMP server in memory: it sends the greeting when `greet` is set, replies to each command
 * with what `reply` returns, and records the commands it received.
 */
function fakeMonitor(
  reply: (command: { execute: string; arguments?: unknown; id: number }) => object | undefined,
  greet = true,
) {
  const received: Array<{ execute: string; arguments?: unknown }> = [];
  let buffered = '';
  const stream: Duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      buffered += chunk.toString();
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        const command = JSON.parse(buffered.slice(0, newline)) as { execute: string; id: number };
        buffered = buffered.slice(newline + 1);
        received.push(command);
        const answer = reply(command);
        if (answer !== undefined) stream.push(`${JSON.stringify({ ...answer, id: command.id })}\r\n`);
        newline = buffered.indexOf('\n');
      }
      callback();
    },
  });
  if (greet) setImmediate(() => stream.push(`${JSON.stringify(greeting)}\r\n`));
  return { stream, received };
}

const options = { host: 'kvm-a', socketPath: '/run/qemu/vm1.qmp', timeoutMs: 200 };

describe('QmpClient', () => {
  it('negotiates capabilities and runs commands', async () => {
    const monitor = fakeMonitor((command) =>
      command.execute === 'query-status' ? { return: { status: 'running', running: true } } : { return: {} },
    );
    const qmp = await QmpClient.open(monitor.stream, options);
    expect(await qmp.execute('query-status')).toEqual({ status: 'running', running: true });
    expect(monitor.received.map((command) => command.execute)).toEqual(['qmp_capabilities', 'query-status']);
    qmp.close();
  });

  it('passes arguments through', async () => {
    const monitor = fakeMonitor(() => ({ return: {} }));
    const qmp = await QmpClient.open(monitor.stream, options);
    await qmp.execute('migrate', { uri: 'tcp:127.0.0.1:4444' });
    expect(monitor.received[1]).toMatchObject({
      execute: 'migrate',
      arguments: { uri: 'tcp:127.0.0.1:4444' },
    });
    qmp.close();
  });

  it('rejects a command error with its class', async () => {
    const monitor = fakeMonitor((command) =>
      command.execute === 'migrate-incoming'
        ? { error: { class: 'GenericError', desc: 'Failed to bind socket: Address already in use' } }
        : { return: {} },
    );
    const qmp = await QmpClient.open(monitor.stream, options);
    const failure = await qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:1' }).catch((error) => error);
    expect(failure).toBeInstanceOf(QmpCommandError);
    expect((failure as QmpCommandError).description).toContain('Address already in use');
    qmp.close();
  });

  it('hands events to listeners', async () => {
    const monitor = fakeMonitor(() => ({ return: {} }));
    const qmp = await QmpClient.open(monitor.stream, options);
    const events: QmpEvent[] = [];
    qmp.onEvent((event) => events.push(event));
    monitor.stream.push('{"event": "MIGRATION", "data": {"status": "active"}}\n');
    await qmp.execute('query-migrate');
    expect(events).toEqual([{ event: 'MIGRATION', data: { status: 'active' } }]);
    qmp.close();
  });

  it('times out without a greeting', async () => {
    const monitor = fakeMonitor(() => ({ return: {} }), false);
    const failure = await QmpClient.open(monitor.stream, options).catch((error) => error);
    expect(isFerryError(failure, 'MONITOR_UNAVAILABLE')).toBe(true);
    expect((failure as Error).message).toContain('another client may be connected');
  });

  it('times out a command without a reply', async () => {
    const monitor = fakeMonitor((command) =>
      command.execute === 'query-status' ? undefined : { return: {} },
    );
    const qmp = await QmpClient.open(monitor.stream, options);
    const failure = await qmp.execute('query-status').catch((error) => error);
    expect(isFerryError(failure, 'MONITOR_UNAVAILABLE')).toBe(true);
    qmp.close();
  });

  it('rejects waiting commands when the stream ends', async () => {
    const monitor = fakeMonitor((command) =>
      command.execute === 'query-status' ? undefined : { return: {} },
    );
    const qmp = await QmpClient.open(monitor.stream, { ...options, timeoutMs: 5000 });
    const pending = qmp.execute('query-status').catch((error) => error);
    monitor.stream.push(null);
    expect(isFerryError(await pending, 'MONITOR_UNAVAILABLE')).toBe(true);
    expect(qmp.closed).toBe(true);
  });
});

describe('vmStateOf', () => {
  it.each([
    ['running', undefined, 'running'],
    ['running', 'completed', 'running'],
    ['running', 'active', 'migrating'],
    ['finish-migrate', 'device', 'migrating'],
    ['inmigrate', 'active', 'paused'],
    ['postmigrate', 'completed', 'absent'],
    ['paused', undefined, 'paused'],
    ['shutdown', undefined, 'stopped'],
    ['some-new-state', undefined, 'stopped'],
  ])('maps %s with migration %s to %s', (runState, migration, expected) => {
    expect(vmStateOf(runState, migration).state).toBe(expected);
  });
});

describe('parseMemInfo', () => {
  it('reads total and available memory', () => {
    const text = 'MemTotal:       24683336 kB\nMemFree:         1000000 kB\nMemAvailable:   23000000 kB\n';
    expect(parseMemInfo(text)).toEqual({ totalMemoryMiB: 24104, freeMemoryMiB: 22460 });
  });

  it('falls back to MemFree', () => {
    expect(parseMemInfo('MemTotal: 2048 kB\nMemFree: 1024 kB\n')).toEqual({
      totalMemoryMiB: 2,
      freeMemoryMiB: 1,
    });
  });

  it('rejects text without MemTotal', () => {
    expect(() => parseMemInfo('nothing here')).toThrow('MemTotal');
  });
});

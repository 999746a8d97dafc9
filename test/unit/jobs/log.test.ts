import { Writable } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { FerryError } from '../../../src/errors.js';
import { createLogger, jobLogger } from '../../../src/log.js';

/** A destination that keeps every JSON line the logger writes. */
function memoryDestination(): { lines: Array<Record<string, unknown>>; stream: Writable } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      callback();
    },
  });
  return { lines, stream };
}

describe('createLogger', () => {
  it('redacts secret-looking fields', () => {
    const { lines, stream } = memoryDestination();
    const logger = createLogger({ level: 'info', destination: stream });
    logger.info(
      {
        password: 'p1',
        authorization: 'Bearer t0',
        host: { name: 'xen-a', password: 'p2', privateKey: 'k', passphrase: 'pp' },
        session: { token: 't1' },
      },
      'Connected',
    );
    const text = JSON.stringify(lines[0]);
    for (const secret of ['"p1"', 'Bearer t0', '"p2"', '"k"', '"pp"', '"t1"']) {
      expect(text).not.toContain(secret);
    }
    expect(lines[0]).toMatchObject({ msg: 'Connected', host: { name: 'xen-a', password: '[redacted]' } });
  });

  it('binds the job context in a child logger', () => {
    const { lines, stream } = memoryDestination();
    const context = { jobId: 'j1', vm: 'web01', source: 'xen-a', target: 'xen-b', attempt: 2, bastion: 'b1' };
    jobLogger(createLogger({ level: 'info', destination: stream }), context).warn('Attempt failed');
    expect(lines[0]).toMatchObject({ ...context, msg: 'Attempt failed', level: 40 });
  });

  it('rejects an unknown level', () => {
    expect(() => createLogger({ level: 'loud' })).toThrow(FerryError);
  });
});

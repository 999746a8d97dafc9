import { describe, expect, it } from 'vitest';

import { parseChatCommand, type ChatCommand } from '../../../producers/chat/parser.js';
import { escapeChat, resultReply } from '../../../producers/chat/replies.js';

function replyOf(text: string): string {
  const command = parseChatCommand(text);
  expect(command.kind).toBe('invalid');
  return (command as Extract<ChatCommand, { kind: 'invalid' }>).reply;
}

describe('parseChatCommand', () => {
  it('parses a migrate command with a reason', () => {
    expect(parseChatCommand('migrate web01 from xen-a to xen-b because kernel 6.1 update')).toEqual({
      kind: 'migrate',
      vm: 'web01',
      source: 'xen-a',
      target: 'xen-b',
      reason: 'kernel 6.1 update',
    });
  });

  it('accepts clauses in any order and any case', () => {
    expect(parseChatCommand('  MIGRATE web01 To xen-b ticket OPS-7 via Direct From xen-a  ')).toEqual({
      kind: 'migrate',
      vm: 'web01',
      source: 'xen-a',
      target: 'xen-b',
      tunnel: 'direct',
      ticket: 'OPS-7',
    });
  });

  it('keeps the reason verbatim, keywords included', () => {
    const command = parseChatCommand('migrate db01 from xen-a to xen-b because moving from rack 3 to rack 4');
    expect(command).toMatchObject({
      source: 'xen-a',
      target: 'xen-b',
      reason: 'moving from rack 3 to rack 4',
    });
  });

  it('parses status, cancel, hosts and help', () => {
    expect(parseChatCommand('status 1234-abcd')).toEqual({ kind: 'status', jobId: '1234-abcd' });
    expect(parseChatCommand('Cancel 1234-abcd')).toEqual({ kind: 'cancel', jobId: '1234-abcd' });
    expect(parseChatCommand('hosts')).toEqual({ kind: 'hosts' });
    expect(parseChatCommand('help')).toEqual({ kind: 'help' });
    expect(parseChatCommand('   ')).toEqual({ kind: 'help' });
  });

  it('explains what a migrate command lacks', () => {
    expect(replyOf('migrate')).toContain('migrate needs a VM name');
    expect(replyOf('migrate web01 to xen-b because x')).toContain('migrate needs "from <source>"');
    expect(replyOf('migrate web01 because x')).toContain('"from <source>" and "to <target>"');
    expect(replyOf('migrate web01 from xen-a to xen-b')).toContain('Say why');
    expect(replyOf('migrate web01 from xen-a to xen-b because')).toContain('Say why after "because"');
    expect(replyOf('migrate web01 from xen-a from xen-c to xen-b because x')).toContain(
      '"from" is given twice',
    );
    expect(replyOf('migrate web01 from to xen-b because x')).toContain('"from" needs a value');
    expect(replyOf('migrate from xen-a to xen-b because x')).toContain('VM name first');
    expect(replyOf('migrate web01 from xen-a to xen-b via scp because x')).toContain(
      '"via" takes relay or direct',
    );
    expect(replyOf('migrate web01 onto xen-b because x')).toContain('I don\'t understand "onto"');
  });

  it('suggests the nearest command for a typo', () => {
    expect(replyOf('migarte web01')).toContain('Did you mean "migrate"?');
    expect(replyOf('stauts abc')).toContain('Did you mean "status"?');
    const unrelated = replyOf('reboot everything');
    expect(unrelated).not.toContain('Did you mean');
    expect(unrelated).toContain('Commands:');
  });

  it('rejects wrong argument counts', () => {
    expect(replyOf('status')).toContain('status needs a job id');
    expect(replyOf('cancel a b')).toContain('cancel takes one job id');
    expect(replyOf('hosts all')).toContain('hosts takes no arguments');
  });

  it('leaves name checks to request validation', () => {
    // The parser only splits words; validateRequest rejects such names with its own message.
    expect(parseChatCommand('migrate web01;reboot from xen-a to xen-b because x')).toMatchObject({
      vm: 'web01;reboot',
    });
  });
});

describe('chat replies', () => {
  it('escapes markup and control characters', () => {
    expect(escapeChat('<!channel> & <@U1>\u0007')).toBe('&lt;!channel&gt; &amp; &lt;@U1&gt; ');
  });

  it('describes a failed result with its error', () => {
    const text = resultReply({
      jobId: 'j1',
      status: 'failed',
      vm: 'web01',
      source: 'xen-a',
      target: 'xen-b',
      requester: 'slack:U1',
      tunnel: 'relay',
      phaseMs: {},
      attempts: 2,
      bastion: 'b1',
      startedAt: '2026-01-01T00:00:00.000Z',
      finishedAt: '2026-01-01T00:00:05.000Z',
      error: { code: 'TARGET_MEMORY_SHORT', message: 'xen-b has 512 MiB free <needs 1024>' },
    });
    expect(text).toBe(
      'Job `j1`: migration of `web01` from `xen-a` to `xen-b` *failed* after 2 attempt(s): `TARGET_MEMORY_SHORT` xen-b has 512 MiB free &lt;needs 1024&gt;',
    );
  });
});

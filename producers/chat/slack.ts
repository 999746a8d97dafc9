/**
 * Slack slash command endpoint (POST /v1/chat/slack), for a command such as `/ferry migrate web01
 * from xen-a to xen-b because patching`.
 *
 * Slack signs each request with the app's signing secret; a request with a bad or stale
 * signature gets 401 and nothing else happens. Slack waits 3 seconds for the response, so the
 * endpoint responds within `ackBudgetMs` in any case. A quick command gets its reply at once;
 * a slow one gets "working on it", and its reply is posted to the response URL later. The requester
 * of a Slack command is `slack:<user id>`.
 */
import type { FastifyInstance } from 'fastify';

import { checkAllowedUrl } from '../callbacks/allow-list.js';
import { ProducerError } from '../common/errors.js';
import type { ProducerIdentity } from '../common/identity.js';
import type { ApiContext } from '../api/context.js';
import { runChatCommand, type ChatReply } from './commands.js';
import { parseChatCommand } from './parser.js';
import { checkSlackSignature } from './slack-signature.js';
import type { SlackMessage, SlackProgress } from './slack-progress.js';

/** Time allowed for the reply itself before the endpoint responds "working on it", in ms. */
const ackBudgetMs = 2_500;

const slackUserIdPattern = /^[A-Z0-9]{2,32}$/;

function message(reply: ChatReply): SlackMessage {
  return { response_type: reply.public ? 'in_channel' : 'ephemeral', text: reply.text };
}

export async function slackRoutes(
  app: FastifyInstance,
  options: { context: ApiContext; progress: SlackProgress },
): Promise<void> {
  const { context, progress } = options;
  const slack = context.settings.slack;
  if (slack === undefined) return;

  // The signature covers the raw body, so the form is parsed only after it is checked.
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    (_request, body, done) => {
      done(null, body);
    },
  );

  const rateLimit = { max: slack.rateLimit.max, timeWindow: slack.rateLimit.windowMs };
  app.post('/v1/chat/slack', { config: { rateLimit } }, async (request, reply) => {
    if (typeof request.body !== 'string') {
      throw new ProducerError(
        'UNSUPPORTED_MEDIA_TYPE',
        'Slack commands are sent as application/x-www-form-urlencoded.',
      );
    }
    const header = (name: string): string | undefined => {
      const value = request.headers[name];
      return typeof value === 'string' ? value : undefined;
    };
    const check = checkSlackSignature(
      slack.signingSecret,
      header('x-slack-request-timestamp'),
      header('x-slack-signature'),
      request.body,
    );
    if (check !== 'valid') {
      request.log.warn({ check }, 'Slack command rejected: bad signature');
      const problem = { missing: 'missing', stale: 'too old', mismatch: 'wrong' }[check];
      throw new ProducerError(
        'UNAUTHORIZED',
        `The Slack signature is ${problem}: check the app's signing secret and the server's clock.`,
      );
    }

    const form = new URLSearchParams(request.body);
    if (form.get('ssl_check') === '1') return reply.code(200).send();

    const userId = form.get('user_id') ?? '';
    if (!slackUserIdPattern.test(userId)) {
      throw new ProducerError('INVALID_REQUEST', 'The Slack command has no valid user_id.', {
        fields: ['user_id'],
      });
    }
    if (slack.users !== undefined && !slack.users.has(userId)) {
      request.log.info({ userId }, 'Slack command rejected: user not allowed');
      return {
        response_type: 'ephemeral',
        text: 'You are not allowed to run ferry commands: ask an administrator to add you.',
      };
    }

    let responseUrl: string;
    try {
      responseUrl = checkAllowedUrl(
        form.get('response_url') ?? undefined,
        slack.responseUrlAllow,
        'response_url',
      ).toString();
    } catch (error) {
      request.log.warn({ err: error }, 'Slack command rejected: response_url not allowed');
      return {
        response_type: 'ephemeral',
        text: 'ferry cannot answer this workspace: its response URL is not in the allow-list.',
      };
    }

    const identity: ProducerIdentity = {
      name: `slack:${userId}`,
      dashboard: false,
      rateLimit: slack.rateLimit,
      ...(slack.hosts === undefined ? {} : { hosts: slack.hosts }),
    };
    const command = parseChatCommand(form.get('text') ?? '');
    const delivery = command.kind === 'migrate' ? { kind: 'slack' as const, url: responseUrl } : undefined;

    const work = runChatCommand(context, identity, command, {
      channel: 'slack',
      ...(delivery === undefined ? {} : { delivery }),
    }).then((chatReply) => {
      if (chatReply.created === true && chatReply.jobId !== undefined) {
        progress.follow(chatReply.jobId, responseUrl);
      }
      return chatReply;
    });

    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), ackBudgetMs);
    });
    const first = await Promise.race([work, late]).finally(() => clearTimeout(timer));
    if (first !== 'late') return message(first);

    void work.then(
      (chatReply) => progress.post(responseUrl, message(chatReply)),
      (error: unknown) => {
        request.log.error({ err: error }, 'Slack command failed after its acknowledgement');
        progress.post(responseUrl, {
          response_type: 'ephemeral',
          text: 'ferry failed to run the command; its log has the details.',
        });
      },
    );
    return { response_type: 'ephemeral', text: 'Working on it…' };
  });
}

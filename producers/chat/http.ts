/**
 * POST /v1/chat: the chat commands over the API, for chat bots other than Slack. The bot sends
 * the user's text with its own token, so its identity is the requester and its host limits apply.
 */
import type { FastifyInstance } from 'fastify';

import { identityOf } from '../api/auth.js';
import type { ApiContext } from '../api/context.js';
import { chatBodySchema, parseWith } from '../api/schemas.js';
import { runChatCommand } from './commands.js';
import { parseChatCommand } from './parser.js';

export async function chatRoutes(app: FastifyInstance, options: { context: ApiContext }): Promise<void> {
  const { context } = options;

  app.post('/v1/chat', async (request) => {
    const identity = identityOf(request);
    const { text } = parseWith(chatBodySchema, request.body, 'body');
    const reply = await runChatCommand(context, identity, parseChatCommand(text), { channel: 'chat' });
    return reply.jobId === undefined ? { text: reply.text } : { text: reply.text, jobId: reply.jobId };
  });
}

/**
 * The queue dashboard (bull-board) under /ui, for operators in a browser.
 *
 * A browser cannot send a bearer header, so /ui/login exchanges an API token for a session
 * cookie: the cookie contains the token's name and an expiry, signed (HMAC) with the dashboard's
 * session secret, and never the token itself. Only tokens with `dashboard: true` may log in,
 * because the board shows every job whatever the token's hosts. A bearer header works too.
 *
 * The board is read-only: retrying or removing jobs from it would bypass the cancel and
 * reconcile logic, so bull-board's mutating actions are off (its readOnlyMode, enforced on the
 * server side by bull-board).
 */
import { randomBytes } from 'node:crypto';

import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import fastifyCookie from '@fastify/cookie';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { ProducerError } from '../common/errors.js';
import type { ProducerIdentity } from '../common/identity.js';
import type { ApiContext } from './context.js';
import { loginPage } from './login-page.js';
import { errorBody } from './http-errors.js';
import { bearerToken } from './tokens.js';

export const dashboardPath = '/ui';
export const sessionCookieName = 'ferry_session';

/** Returns the path a login sends the browser back to: one under /ui, never one that leaves the site. */
function safeNext(next: unknown): string {
  if (typeof next !== 'string' || next.length > 512) return `${dashboardPath}/`;
  const underBoard = next === dashboardPath || next.startsWith(`${dashboardPath}/`);
  if (!underBoard || next.includes('//') || next.includes('\\')) return `${dashboardPath}/`;
  return next;
}

function sessionIdentity(request: FastifyRequest, context: ApiContext): ProducerIdentity | undefined {
  const cookie = request.cookies[sessionCookieName];
  if (cookie === undefined) return undefined;
  const unsigned = request.unsignCookie(cookie);
  if (!unsigned.valid || unsigned.value === null) return undefined;
  const match = /^(\d{1,15}):(.+)$/.exec(unsigned.value);
  if (match === null || Number(match[1]) < Date.now()) return undefined;
  // The token may have been removed from the configuration since the login.
  return context.tokens.byName(match[2] as string);
}

function wantsHtml(request: FastifyRequest): boolean {
  return request.method === 'GET' && (request.headers.accept ?? '').includes('text/html');
}

export async function dashboardRoutes(app: FastifyInstance, options: { context: ApiContext }): Promise<void> {
  const { context } = options;
  const { settings } = context;
  // Without a configured secret, sessions end when the process restarts.
  const sessionSecret = settings.dashboard.sessionSecret ?? randomBytes(32).toString('hex');
  await app.register(fastifyCookie, { secret: sessionSecret });

  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    (_request, body, done) => {
      done(null, new URLSearchParams(body as string));
    },
  );

  const sendLoginPage = (reply: FastifyReply, status: number, next: string, error?: string): FastifyReply =>
    reply
      .code(status)
      .type('text/html; charset=utf-8')
      .header('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
      .header('Cache-Control', 'no-store')
      .send(loginPage(next, error));

  app.get(`${dashboardPath}/login`, async (request, reply) => {
    const next = safeNext((request.query as Record<string, unknown>).next);
    return sendLoginPage(reply, 200, next);
  });

  app.post(`${dashboardPath}/login`, async (request, reply) => {
    const form = request.body instanceof URLSearchParams ? request.body : new URLSearchParams();
    const next = safeNext(form.get('next'));
    const identity = context.tokens.authenticate(form.get('token') ?? undefined);
    if (identity === undefined) return sendLoginPage(reply, 401, next, 'This token is not valid.');
    if (!identity.dashboard) {
      return sendLoginPage(reply, 403, next, `The token ${identity.name} may not open the dashboard.`);
    }

    const expiresAt = Date.now() + settings.dashboard.sessionMs;
    request.log.info({ requester: identity.name }, 'Dashboard login');
    return reply
      .setCookie(sessionCookieName, `${expiresAt}:${identity.name}`, {
        signed: true,
        httpOnly: true,
        // Lax keeps links from chat working; cross-site POSTs still carry no cookie.
        sameSite: 'lax',
        secure: request.protocol === 'https',
        path: dashboardPath,
        maxAge: Math.floor(settings.dashboard.sessionMs / 1000),
      })
      .redirect(next, 303);
  });

  app.post(`${dashboardPath}/logout`, async (_request, reply) =>
    reply.clearCookie(sessionCookieName, { path: dashboardPath }).redirect(`${dashboardPath}/login`, 303),
  );

  await app.register(async (board) => {
    board.addHook('onRequest', async (request, reply) => {
      const identity =
        sessionIdentity(request, context) ??
        context.tokens.authenticate(bearerToken(request.headers.authorization));
      if (identity?.dashboard === true) {
        request.identity = identity;
        return;
      }
      if (identity === undefined && wantsHtml(request)) {
        return reply.redirect(`${dashboardPath}/login?next=${encodeURIComponent(request.url)}`, 303);
      }
      // Sent here rather than thrown: bull-board's own error handler, which covers these routes,
      // would turn any thrown error into a 500.
      const error =
        identity === undefined
          ? new ProducerError(
              'UNAUTHORIZED',
              `Log in at ${dashboardPath}/login, or send "Authorization: Bearer <token>".`,
            )
          : new ProducerError('FORBIDDEN', `The token ${identity.name} may not open the dashboard.`);
      return reply.code(error.status).send(errorBody(error.code, error.message));
    });

    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(dashboardPath);
    createBullBoard({
      queues: [new BullMQAdapter(context.queue.queue, { readOnlyMode: true })],
      serverAdapter,
      options: { uiConfig: { boardTitle: 'ferry migrations' } },
    });
    await board.register(serverAdapter.registerPlugin(), { prefix: dashboardPath });
  });
}

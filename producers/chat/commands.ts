/**
 * Runs parsed chat commands for an identity and returns the reply text. Queueing goes through
 * the same `submitMigration` as the HTTP API, so chat requests get the same validation, host
 * rights and repeat detection. Mistakes of the user become replies; only failures of ferry itself
 * are thrown.
 */
import { isFerryError } from '../../src/errors.js';
import { cancelMigration } from '../../src/jobs/cancel.js';
import { getMigrationStatus } from '../../src/jobs/producer.js';
import type { DeliveryTarget } from '../callbacks/store.js';
import { httpStatusOf, isProducerError } from '../common/errors.js';
import { usableHosts, type ProducerIdentity } from '../common/identity.js';
import { submitMigration } from '../common/submit.js';
import { readVisibleStatus, type ApiContext } from '../api/context.js';
import { helpText, type ChatCommand } from './parser.js';
import { cancelReply, escapeChat, hostsReply, queuedReply, repeatedReply, statusReply } from './replies.js';

export interface ChatReply {
  text: string;
  /** The job the command queued, read or cancelled. */
  jobId?: string;
  /** True when the command queued a new job. */
  created?: boolean;
  /** True for replies everyone in the channel should see (a queued migration). */
  public: boolean;
}

export type ChatContext = Pick<ApiContext, 'queue' | 'inventory' | 'submit' | 'metrics'>;

export interface ChatCommandOptions {
  channel: 'chat' | 'slack';
  /** Delivery target of the result of a queued migration. */
  delivery?: DeliveryTarget;
}

async function run(
  context: ChatContext,
  identity: ProducerIdentity,
  command: ChatCommand,
  options: ChatCommandOptions,
): Promise<ChatReply> {
  switch (command.kind) {
    case 'invalid':
      return { text: escapeChat(command.reply), public: false };
    case 'help':
      return { text: helpText(), public: false };
    case 'hosts':
      return { text: hostsReply(usableHosts(identity, context.inventory)), public: false };
    case 'status': {
      const report = await readVisibleStatus(context.queue, identity, command.jobId);
      return { text: statusReply(report), jobId: command.jobId, public: false };
    }
    case 'cancel': {
      await readVisibleStatus(context.queue, identity, command.jobId);
      const { outcome, status } = await cancelMigration(context.queue, command.jobId, identity.name);
      return { text: cancelReply(command.jobId, outcome, status), jobId: command.jobId, public: true };
    }
    case 'migrate': {
      const { kind: _kind, tunnel, ...fields } = command;
      const input = tunnel === undefined ? fields : { ...fields, options: { tunnel } };
      const { jobId, created } = await submitMigration(
        context.submit,
        identity,
        input,
        options.delivery === undefined ? {} : { delivery: options.delivery },
      );
      context.metrics.countSubmission(options.channel, created);
      if (created) return { text: queuedReply(jobId, command), jobId, created, public: true };
      const state = (await getMigrationStatus(context.queue, jobId)).state;
      return { text: repeatedReply(jobId, state), jobId, created, public: false };
    }
  }
}

/** Runs a command. A rejected request or an unknown job becomes a reply that explains why. */
export async function runChatCommand(
  context: ChatContext,
  identity: ProducerIdentity,
  command: ChatCommand,
  options: ChatCommandOptions,
): Promise<ChatReply> {
  try {
    return await run(context, identity, command, options);
  } catch (error) {
    const status = httpStatusOf(error);
    if (status === 503) {
      return { text: 'ferry cannot reach its queue right now: try again in a minute.', public: false };
    }
    if (status < 500 && (isProducerError(error) || isFerryError(error))) {
      return { text: escapeChat(error.message), public: false };
    }
    throw error;
  }
}

/**
 * Chat replies, in the text format Slack and most chat tools render (`code`, *bold*). Every piece
 * that came from a user, a worker or a host is escaped, so that a VM name or an error message
 * cannot ping a channel (`<!channel>`) or break the formatting.
 */
import type { MigrationStatusReport } from '../../src/jobs/producer.js';
import type { MigrationResult } from '../../src/types.js';

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Escapes the three characters Slack treats as markup, and replaces control characters. */
export function escapeChat(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\p{Cc}\u202A-\u202E\u2066-\u2069]/gu, ' ');
}

function code(text: string): string {
  return `\`${escapeChat(text).replace(/`/g, "'")}\``;
}

function route(subject: { vm: string; source: string; target: string }): string {
  return `${code(subject.vm)} from ${code(subject.source)} to ${code(subject.target)}`;
}

function seconds(result: MigrationResult): string {
  const ms = Date.parse(result.finishedAt) - Date.parse(result.startedAt);
  return Number.isFinite(ms) && ms >= 0 ? `${(ms / 1000).toFixed(1)} s` : 'unknown time';
}

export function queuedReply(jobId: string, subject: { vm: string; source: string; target: string }): string {
  return `Queued the migration of ${route(subject)} as job ${code(jobId)}. I will post its progress and result here.`;
}

export function repeatedReply(jobId: string, state: string): string {
  return `That migration is already queued as job ${code(jobId)} (${escapeChat(state)}); not queueing it twice.`;
}

/** Describes a finished migration in one line: what happened, where the VM is, and why it failed. */
export function resultReply(result: MigrationResult): string {
  const head = `Job ${code(result.jobId)}: migration of ${route(result)}`;
  const error =
    result.error === undefined ? '' : ` ${code(result.error.code)} ${escapeChat(result.error.message)}`;
  switch (result.status) {
    case 'completed': {
      const moved = result.bytes === undefined ? '' : `, ${formatBytes(result.bytes)} moved`;
      return `${head} *completed* in ${seconds(result)}${moved}; it runs on ${code(result.target)}.`;
    }
    case 'failed':
      return `${head} *failed* after ${result.attempts} attempt(s):${error}`;
    case 'cancelled':
      return `${head} was *cancelled*:${error}`;
    case 'needs-attention': {
      const seen = (result.observed ?? [])
        .map((placement) => `${code(placement.host)}: ${escapeChat(placement.state)}`)
        .join(', ');
      return `${head} *needs attention*: check where the VM runs${seen === '' ? '' : ` (seen ${seen})`}.${error}`;
    }
  }
}

/** Describes a job that has not ended: its state, and its phase and bytes when known. */
export function progressReply(report: MigrationStatusReport): string {
  const parts = [`Job ${code(report.jobId)} is *${escapeChat(report.state)}*`];
  const progress = report.progress;
  if (progress !== undefined) {
    parts.push(`phase ${escapeChat(progress.phase)}`);
    if (progress.bytes !== undefined) parts.push(`${formatBytes(progress.bytes)} moved`);
  }
  if (report.attemptsMade > 0) parts.push(`${report.attemptsMade} attempt(s) made`);
  return `${parts.join(', ')}.`;
}

export function statusReply(report: MigrationStatusReport): string {
  return report.result === undefined ? progressReply(report) : resultReply(report.result);
}

export function cancelReply(jobId: string, outcome: string, status: string | undefined): string {
  switch (outcome) {
    case 'cancelled':
      return `Cancelled job ${code(jobId)} before it started; the VM was not touched.`;
    case 'cancelling':
      return `Cancelling job ${code(jobId)}: its worker stops the migration and reports where the VM is.`;
    default:
      return `Job ${code(jobId)} had already ended${status === undefined ? '' : ` (${escapeChat(status)})`}; nothing to cancel.`;
  }
}

export function hostsReply(hosts: string[]): string {
  if (hosts.length === 0) return 'You may not use any host.';
  return `Hosts you may use: ${hosts.map((host) => code(host)).join(', ')}.`;
}

/** Human-readable lines for the terminal. Scripts should use --json instead of parsing these. */
import type { MigrationStatusReport } from '../jobs/producer.js';
import type { MigrationProgress, MigrationResult } from '../types.js';

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** Formats a byte count with binary units, e.g. 1536 as "1.5 KiB". */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * Escapes control characters in text that came from a worker or a host (error messages,
 * failure reasons), so that it cannot move the cursor or rewrite the terminal.
 */
export function printable(text: string): string {
  return text.replace(
    /[\p{Cc}\u202A-\u202E\u2066-\u2069]/gu,
    (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function describePhase(progress: MigrationProgress): string {
  if (progress.bytes === undefined) return `phase ${progress.phase}`;
  const total = progress.totalBytes === undefined ? '' : ` of ${formatBytes(progress.totalBytes)}`;
  const parts = [`phase ${progress.phase}`, `${formatBytes(progress.bytes)}${total} moved`];
  // The hypervisor's own figures, where it reports them (QEMU).
  if (progress.remainingBytes !== undefined) parts.push(`${formatBytes(progress.remainingBytes)} remaining`);
  if (progress.dirtyPagesRate !== undefined) parts.push(`${progress.dirtyPagesRate} pages/s dirtied`);
  if (progress.expectedDowntimeMs !== undefined) {
    const limit = progress.downtimeLimitMs === undefined ? '' : ` (limit ${progress.downtimeLimitMs} ms)`;
    parts.push(`expected downtime ${progress.expectedDowntimeMs} ms${limit}`);
  }
  return parts.join(', ');
}

/** Describes a status in one line while waiting, e.g. "running: phase migrate, 1.0 GiB of 4.0 GiB moved". */
export function describeProgress(report: MigrationStatusReport): string {
  const parts: string[] = [];
  if (report.progress !== undefined) parts.push(describePhase(report.progress));
  if (report.attemptsMade > 0) parts.push(`${report.attemptsMade} attempt(s) made`);
  return parts.length === 0 ? report.state : `${report.state}: ${parts.join(', ')}`;
}

/** Formats one result as a line of `ferry results`. */
export function describeResult(result: MigrationResult): string {
  const line = `${result.finishedAt} ${result.jobId} ${result.status} ${result.vm} ${result.source} -> ${result.target}`;
  if (result.error === undefined) return line;
  return `${line}: ${result.error.code}: ${printable(result.error.message)}`;
}

/** Formats a status report as the lines of `ferry status`. */
export function describeStatus(report: MigrationStatusReport): string[] {
  const lines = [`job ${report.jobId}: ${report.state}`];
  const request = report.result ?? report.request;
  if (request !== undefined) {
    lines.push(
      `  vm ${request.vm}, from ${request.source} to ${request.target}, requested by ${request.requester}`,
    );
  }
  if (report.progress !== undefined) lines.push(`  ${describePhase(report.progress)}`);
  lines.push(`  attempts made: ${report.attemptsMade}`);

  const result = report.result;
  if (result !== undefined) {
    lines.push(
      `  ran on bastion ${printable(result.bastion)} from ${result.startedAt} to ${result.finishedAt}`,
    );
    if (result.bytes !== undefined) lines.push(`  moved ${formatBytes(result.bytes)}`);
    if (result.downtimeMs !== undefined) lines.push(`  downtime ${result.downtimeMs} ms`);
    if (result.error !== undefined) {
      lines.push(`  error ${result.error.code}: ${printable(result.error.message)}`);
    }
    for (const placement of result.observed ?? []) {
      const detail = placement.detail === undefined ? '' : ` (${printable(placement.detail)})`;
      lines.push(`  seen on ${placement.host}: ${printable(placement.state)}${detail}`);
    }
  }
  if (report.failedReason !== undefined) lines.push(`  failed: ${printable(report.failedReason)}`);
  return lines;
}

/**
 * Parser of chat commands, for Slack and any other chat front end:
 *
 *   migrate <vm> from <source> to <target> [via relay|direct] [ticket <ref>] [because <reason>]
 *   status <job id>
 *   cancel <job id>
 *   hosts
 *   help
 *
 * Keywords are case-insensitive and the clauses of `migrate` may come in any order, except that
 * `because` takes the rest of the line as the reason. The parser checks only the shape of a
 * command; names and ids are validated where the request is validated, with those messages. Text
 * it cannot read gets a reply that explains what was expected, never a guess.
 */
import { tunnelModes, type TunnelMode } from '../../src/types.js';

export type ChatCommand =
  | {
      kind: 'migrate';
      vm: string;
      source: string;
      target: string;
      tunnel?: TunnelMode;
      ticket?: string;
      reason?: string;
    }
  | { kind: 'status'; jobId: string }
  | { kind: 'cancel'; jobId: string }
  | { kind: 'hosts' }
  | { kind: 'help' }
  | { kind: 'invalid'; reply: string };

export const chatUsage = [
  'migrate <vm> from <source> to <target> [via relay|direct] [ticket <ref>] because <reason>',
  'status <job id>',
  'cancel <job id>',
  'hosts',
  'help',
];

const commandNames = ['migrate', 'status', 'cancel', 'hosts', 'help'] as const;
const migrateUsage = `Usage: ${chatUsage[0]}`;

export function helpText(prefix = ''): string {
  return `${prefix}Commands:\n${chatUsage.map((line) => `• ${line}`).join('\n')}`;
}

/** Levenshtein distance, for "did you mean" on misspelt command names. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(
        Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost),
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function invalid(reply: string): ChatCommand {
  return { kind: 'invalid', reply };
}

/** Shows a word from the user in a reply: cut, without backticks or line breaks. */
function shown(word: string): string {
  const flat = word.replace(/[`\r\n]/g, ' ');
  return flat.length > 40 ? `${flat.slice(0, 40)}…` : flat;
}

function parseJobCommand(kind: 'status' | 'cancel', words: string[]): ChatCommand {
  if (words.length === 0) return invalid(`${kind} needs a job id. Usage: ${kind} <job id>`);
  if (words.length > 1) {
    return invalid(`${kind} takes one job id, but got ${words.length} words. Usage: ${kind} <job id>`);
  }
  return { kind, jobId: words[0] as string };
}

type ClauseName = 'from' | 'to' | 'via' | 'ticket';
const clauseNames: readonly ClauseName[] = ['from', 'to', 'via', 'ticket'];

function parseMigrate(rest: string): ChatCommand {
  // `because` ends the clauses: everything after it is the reason, verbatim.
  const becauseMatch = /(?:^|\s)because(?:\s+|$)/i.exec(rest);
  const clausesText = becauseMatch === null ? rest : rest.slice(0, becauseMatch.index);
  const reason =
    becauseMatch === null ? undefined : rest.slice(becauseMatch.index + becauseMatch[0].length).trim();
  if (reason !== undefined && reason === '') return invalid(`Say why after "because". ${migrateUsage}`);

  const words = clausesText.split(/\s+/).filter((word) => word !== '');
  const vm = words.shift();
  if (vm === undefined) return invalid(`migrate needs a VM name. ${migrateUsage}`);
  if (clauseNames.includes(vm.toLowerCase() as ClauseName)) {
    return invalid(`migrate needs the VM name first, before "${shown(vm)}". ${migrateUsage}`);
  }

  const clauses: Partial<Record<ClauseName, string>> = {};
  while (words.length > 0) {
    const keyword = (words.shift() as string).toLowerCase();
    if (!clauseNames.includes(keyword as ClauseName)) {
      return invalid(
        `I don't understand "${shown(keyword)}" in this migrate command: expected from, to, via, ticket or because. ${migrateUsage}`,
      );
    }
    const name = keyword as ClauseName;
    if (clauses[name] !== undefined) return invalid(`"${name}" is given twice. ${migrateUsage}`);
    const value = words.shift();
    if (value === undefined || clauseNames.includes(value.toLowerCase() as ClauseName)) {
      return invalid(`"${name}" needs a value after it. ${migrateUsage}`);
    }
    clauses[name] = value;
  }

  const missing = (['from', 'to'] as const).filter((name) => clauses[name] === undefined);
  if (missing.length > 0) {
    const parts = missing.map((name) => (name === 'from' ? '"from <source>"' : '"to <target>"'));
    return invalid(`migrate needs ${parts.join(' and ')}. ${migrateUsage}`);
  }
  if (reason === undefined && clauses.ticket === undefined) {
    return invalid(`Say why: add "because <reason>" or "ticket <ref>". ${migrateUsage}`);
  }

  let tunnel: TunnelMode | undefined;
  if (clauses.via !== undefined) {
    const mode = clauses.via.toLowerCase();
    if (!(tunnelModes as readonly string[]).includes(mode)) {
      return invalid(`"via" takes ${tunnelModes.join(' or ')}, not "${shown(clauses.via)}".`);
    }
    tunnel = mode as TunnelMode;
  }

  return {
    kind: 'migrate',
    vm,
    source: clauses.from as string,
    target: clauses.to as string,
    ...(tunnel === undefined ? {} : { tunnel }),
    ...(clauses.ticket === undefined ? {} : { ticket: clauses.ticket }),
    ...(reason === undefined ? {} : { reason }),
  };
}

/** Parses one chat message into a command, or into a reply that explains what was wrong. */
export function parseChatCommand(text: string): ChatCommand {
  const trimmed = text.trim();
  if (trimmed === '') return { kind: 'help' };
  const match = /^(\S+)\s*([\s\S]*)$/.exec(trimmed);
  const word = (match?.[1] ?? '').toLowerCase();
  const rest = match?.[2] ?? '';
  const restWords = rest.split(/\s+/).filter((part) => part !== '');

  switch (word) {
    case 'migrate':
      return parseMigrate(rest);
    case 'status':
    case 'cancel':
      return parseJobCommand(word, restWords);
    case 'hosts':
    case 'help':
      if (restWords.length > 0) return invalid(`${word} takes no arguments. ${helpText()}`);
      return { kind: word };
    default: {
      const nearest = commandNames.find((name) => editDistance(word, name) <= 2);
      const hint = nearest === undefined ? '' : ` Did you mean "${nearest}"?`;
      return invalid(`I don't know the command "${shown(word)}".${hint}\n${helpText()}`);
    }
  }
}

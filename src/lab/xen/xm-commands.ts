import type { MigrateRequest } from './outgoing.js';
import type { DomainView, XmResult } from './types.js';
import { formatInfo, formatList, formatLongDomain, type HostInfo } from './xm-format.js';

/** The parts of a simulated host that xm commands read or drive. */
export interface XmHost {
  /** Domain-0 first, then every other domain by id. */
  listDomains(): DomainView[];
  info(): HostInfo;
  migrate(request: MigrateRequest): Promise<XmResult>;
}

const DEFAULT_RELOCATION_PORT = 8002;

const USAGE = `Usage: xm <subcommand> [args]

Subcommands of the ferry lab's simulated xm:
 list [-l|--long] [Domain ...]      List domains, or print their configuration with -l
 info                               Print facts about the host, memory in MiB
 migrate [-l|--live] [-p|--port=PORT] <Domain> <Host>
                                    Send a domain to the relocation server at Host:PORT
                                    (PORT defaults to ${DEFAULT_RELOCATION_PORT})
`;

const ok = (stdout: string): XmResult => ({ stdout, stderr: '', code: 0 });
const error = (message: string, usage = ''): XmResult => ({
  stdout: '',
  stderr: `Error: ${message}\n${usage === '' ? '' : `\n${usage}`}`,
  code: 1,
});

const MIGRATE_USAGE = 'Usage: xm migrate [-l|--live] [-p|--port=PORT] <Domain> <Host>\n';
const LIST_USAGE = 'Usage: xm list [-l|--long] [Domain ...]\n';

/** Runs one xm command line against a host. Unknown commands and options are usage errors (exit 1). */
export async function runXm(host: XmHost, args: readonly string[]): Promise<XmResult> {
  const [command, ...rest] = args;
  switch (command) {
    case undefined:
      return { stdout: '', stderr: USAGE, code: 1 };
    case 'help':
    case '-h':
    case '--help':
      return ok(USAGE);
    case 'list':
      return list(host, rest);
    case 'info':
      return rest.length === 0
        ? ok(formatInfo(host.info()))
        : error("'xm info' takes no arguments.", 'Usage: xm info\n');
    case 'migrate':
      return migrate(host, rest);
    default:
      return error(`unknown subcommand '${command}'.`, USAGE);
  }
}

function list(host: XmHost, args: readonly string[]): XmResult {
  let long = false;
  const requested: string[] = [];
  for (const arg of args) {
    if (arg === '-l' || arg === '--long') long = true;
    else if (arg.startsWith('-') && arg !== '-') return error(`option ${arg} not recognized.`, LIST_USAGE);
    else requested.push(arg);
  }

  const domains = host.listDomains();
  let selected = domains;
  if (requested.length > 0) {
    selected = [];
    for (const nameOrId of requested) {
      const domain = findDomain(domains, nameOrId);
      if (domain === undefined) return error(`Domain '${nameOrId}' does not exist.`);
      selected.push(domain);
    }
  }
  return ok(long ? selected.map(formatLongDomain).join('') : formatList(selected));
}

/** Finds a domain by exact name, or by numeric id when no name matches, as xm does. */
function findDomain(domains: readonly DomainView[], nameOrId: string): DomainView | undefined {
  const byName = domains.find((domain) => domain.name === nameOrId);
  if (byName !== undefined || !/^\d+$/.test(nameOrId)) return byName;
  return domains.find((domain) => domain.id === Number(nameOrId));
}

function parsePort(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

async function migrate(host: XmHost, args: readonly string[]): Promise<XmResult> {
  let live = false;
  let portText: string | undefined = String(DEFAULT_RELOCATION_PORT);
  const positional: string[] = [];

  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] as string;
    if (arg === '-l' || arg === '--live') {
      live = true;
    } else if (arg === '-p' || arg === '--port') {
      i += 1;
      portText = args[i];
      if (portText === undefined) return error(`option ${arg} requires a port number.`, MIGRATE_USAGE);
    } else if (arg.startsWith('--port=')) {
      portText = arg.slice('--port='.length);
    } else if (/^-p\d/.test(arg)) {
      portText = arg.slice(2);
    } else if (arg.startsWith('-') && arg !== '-') {
      return error(`option ${arg} not recognized.`, MIGRATE_USAGE);
    } else {
      positional.push(arg);
    }
  }

  const port = parsePort(portText);
  if (port === undefined) {
    return error(`invalid port '${portText ?? ''}': expected a number from 1 to 65535.`);
  }
  const [domain, target] = positional;
  if (domain === undefined || target === undefined || positional.length !== 2) {
    return error("'xm migrate' requires 2 arguments.", MIGRATE_USAGE);
  }
  return host.migrate({ domain, target, port, live });
}

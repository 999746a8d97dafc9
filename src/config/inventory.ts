import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';

import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

import { FerryError } from '../errors.js';
import { formatZodIssues } from './zod-errors.js';

/** Host names in the inventory, and VM names, share this form: no shell metacharacters. */
export const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const absolutePath = z
  .string()
  .min(1)
  .refine((path) => isAbsolute(path), 'must be an absolute path')
  .refine((path) => !/[\0\n]/.test(path), 'must not contain NUL or newline characters');

const port = z.number().int().min(1).max(65535);

/** Paths of the commands ferry runs on a host. */
const commandsSchema = z
  .object({
    /** xm, the Xen management command. Default /usr/sbin/xm. */
    xm: absolutePath.default('/usr/sbin/xm'),
    /** OpenSSH client, for direct-mode tunnels started on this host. Default /usr/bin/ssh. */
    ssh: absolutePath.default('/usr/bin/ssh'),
    /** `ip`, used to list the network bridges. Default /usr/sbin/ip. */
    ip: absolutePath.default('/usr/sbin/ip'),
    /** `ls`, used to check that the VM's storage paths exist. Default /usr/bin/ls. */
    ls: absolutePath.default('/usr/bin/ls'),
    /** `tail`, used to read the end of xend's log after a failed migration. Default /usr/bin/tail. */
    tail: absolutePath.default('/usr/bin/tail'),
  })
  .strict();

/** Credentials this host uses when it is the source of a direct-mode tunnel (paths on the host). */
const directSchema = z
  .object({
    identityFile: absolutePath,
    knownHostsFile: absolutePath,
    /** Range the free local port of the forward is picked from. Default 20000-29999. */
    localPorts: z
      .tuple([port, port])
      .refine(([low, high]) => low <= high, 'the first port must not be above the second')
      .optional(),
  })
  .strict();

const hostSchema = z
  .object({
    address: z
      .string()
      .min(1)
      .regex(/^[A-Za-z0-9.:_-]+$/, 'must be a host name or IP address'),
    port: port.default(22),
    user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a Unix account name'),
    /** Private key on the bastion; exclusive with `agent`. */
    identityFile: absolutePath.optional(),
    /** Use the ssh-agent at SSH_AUTH_SOCK (true) or at this socket path. */
    agent: z.union([z.literal(true), absolutePath]).optional(),
    /** Pinned host key as an OpenSSH SHA256 fingerprint; exclusive with `knownHostsFile`. */
    hostKey: z
      .string()
      .regex(
        /^SHA256:[A-Za-z0-9+/]{43}$/,
        'must be an OpenSSH fingerprint such as SHA256:<43 base64 characters>',
      )
      .optional(),
    knownHostsFile: absolutePath.optional(),
    driver: z.enum(['xm']).default('xm'),
    relocationPort: port.default(8002),
    /** Run hypervisor commands through `sudo -n`. Default false. */
    sudo: z.boolean().default(false),
    /**
     * Folder on the host, writable by the login user, where a running migrate command keeps its
     * pid, exit status and output, so that it survives a lost SSH connection and stays
     * observable. Default /var/tmp/ferry.
     */
    workDir: absolutePath.default('/var/tmp/ferry'),
    /** xend's log, read after a failed migration to tell a rejection from a broken stream. */
    xendLog: absolutePath.default('/var/log/xen/xend.log'),
    commands: commandsSchema.default(() => commandsSchema.parse({})),
    direct: directSchema.optional(),
  })
  .strict()
  .superRefine((host, context) => {
    if ((host.identityFile === undefined) === (host.agent === undefined)) {
      context.addIssue({ code: 'custom', message: 'set exactly one of identityFile and agent' });
    }
    if ((host.hostKey === undefined) === (host.knownHostsFile === undefined)) {
      context.addIssue({ code: 'custom', message: 'set exactly one of hostKey and knownHostsFile' });
    }
  });

const inventorySchema = z
  .object({
    hosts: z.record(z.string(), hostSchema),
  })
  .strict()
  .superRefine((inventory, context) => {
    const names = Object.keys(inventory.hosts);
    if (names.length === 0) {
      context.addIssue({ code: 'custom', path: ['hosts'], message: 'the inventory names no hosts' });
    }
    for (const name of names.filter((candidate) => !namePattern.test(candidate))) {
      context.addIssue({
        code: 'custom',
        path: ['hosts', name],
        message:
          'host names must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ (letters, digits, dot, underscore, dash)',
      });
    }
  });

export type HostConfig = z.infer<typeof hostSchema> & { name: string };
export type HostCommands = z.infer<typeof commandsSchema>;

/** The validated inventory: every host ferry may touch, by name. */
export class Inventory {
  readonly #hosts: Map<string, HostConfig>;

  constructor(hosts: HostConfig[]) {
    this.#hosts = new Map(hosts.map((host) => [host.name, host]));
  }

  has(name: string): boolean {
    return this.#hosts.has(name);
  }

  /** Returns a host by name or throws UNKNOWN_HOST naming the hosts that exist. */
  host(name: string): HostConfig {
    const host = this.#hosts.get(name);
    if (host === undefined) {
      throw new FerryError(
        'UNKNOWN_HOST',
        `Host '${name}' is not in the inventory (known: ${this.names().join(', ')}).`,
        {
          context: { host: name },
        },
      );
    }
    return host;
  }

  names(): string[] {
    return [...this.#hosts.keys()].sort();
  }

  hosts(): HostConfig[] {
    return this.names().map((name) => this.host(name));
  }
}

/** Validates inventory data already parsed from YAML or JSON. */
export function parseInventory(data: unknown, source = 'inventory'): Inventory {
  const parsed = inventorySchema.safeParse(data);
  if (!parsed.success) {
    throw new FerryError('INVALID_INVENTORY', `Invalid ${source}: ${formatZodIssues(parsed.error.issues)}`);
  }
  return new Inventory(Object.entries(parsed.data.hosts).map(([name, host]) => ({ ...host, name })));
}

/** Reads and validates an inventory YAML file. */
export function loadInventory(path: string): Inventory {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new FerryError(
      'INVALID_INVENTORY',
      `Cannot read the inventory file ${path}: ${(error as Error).message}. Pass --inventory PATH or set FERRY_INVENTORY.`,
      { cause: error },
    );
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw new FerryError(
      'INVALID_INVENTORY',
      `Inventory ${path} is not valid YAML: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  return parseInventory(data, `inventory ${path}`);
}

/** A host as shown to producers and the API: no credentials, no key paths. */
export function publicHostView(host: HostConfig): { name: string; address: string; driver: string } {
  return { name: host.name, address: host.address, driver: host.driver };
}

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

const milliseconds = z.number().int().min(1);

const slotCount = z.number().int().min(1).max(1000);

/**
 * Migrations this host takes part in at once; every limit is the number of slots a lock
 * scheduler grants. Without `outgoing` and `incoming`, both directions share `migrations`
 * slots (default 1). Setting either one counts the directions apart: each direction then gets
 * its own limit (default 1), and `migrations`, when set, caps both together as well.
 */
const limitsSchema = z
  .object({
    migrations: slotCount.optional(),
    outgoing: slotCount.optional(),
    incoming: slotCount.optional(),
  })
  .strict();

/** Settings of a host whose driver is `qemu`. */
const qemuSchema = z
  .object({
    /**
     * Argument vector that starts a VM's incoming QEMU on this host, run as the login user.
     * `{vm}` and `{monitor}` in an argument become the VM name and its monitor socket path. The
     * command must start QEMU with the VM's arguments plus `-incoming defer` and its QMP monitor
     * on `{monitor}`, and return once QEMU runs (for example through QEMU's -daemonize).
     */
    incomingCommand: z
      .array(
        z
          .string()
          .min(1)
          .refine((arg) => !/[\0\n]/.test(arg), 'must not contain NUL or newline'),
      )
      .min(1)
      .refine((argv) => isAbsolute(argv[0] ?? ''), 'must start with an absolute path'),
    /** QMP monitor socket of each VM on this host; `{vm}` becomes the VM name. */
    monitorSocket: absolutePath.refine((path) => path.includes('{vm}'), 'must contain {vm}'),
    /** Range the incoming QEMU's port on the host's loopback is picked from. Default 61000-65535. */
    incomingPorts: z
      .tuple([port, port])
      .refine(([low, high]) => low <= high, 'the first port must not be above the second')
      .default([61000, 65535]),
    /** Migration bandwidth limit in MiB/s, 0 for none. Default 0. */
    maxBandwidthMiBps: z.number().int().min(0).default(0),
    /** Downtime limit a migration starts with, in ms. Default 300, QEMU's own default. */
    downtimeLimitMs: milliseconds.default(300),
    /** Downtime limit that a migration which does not converge is raised to at most, in ms. Default 2000. */
    maxDowntimeLimitMs: milliseconds.default(2000),
    /** Number of equal steps from downtimeLimitMs to maxDowntimeLimitMs. Default 5. */
    downtimeSteps: z.number().int().min(0).max(100).default(5),
    /** Memory passes without converging before each raise, and before giving up at the maximum. Default 3. */
    passesPerDowntimeStep: z.number().int().min(1).max(1000).default(3),
    /** A migration that sends no byte for this long is cancelled (migrate_cancel), in ms. Default 60000. */
    stallTimeoutMs: milliseconds.default(60_000),
  })
  .strict()
  .refine((qemu) => qemu.maxDowntimeLimitMs >= qemu.downtimeLimitMs, {
    message: 'maxDowntimeLimitMs must not be below downtimeLimitMs',
    path: ['maxDowntimeLimitMs'],
  });

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
    driver: z.enum(['xm', 'qemu']).default('xm'),
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
    qemu: qemuSchema.optional(),
    limits: limitsSchema.optional(),
  })
  .strict()
  .superRefine((host, context) => {
    if ((host.identityFile === undefined) === (host.agent === undefined)) {
      context.addIssue({ code: 'custom', message: 'set exactly one of identityFile and agent' });
    }
    if ((host.hostKey === undefined) === (host.knownHostsFile === undefined)) {
      context.addIssue({ code: 'custom', message: 'set exactly one of hostKey and knownHostsFile' });
    }
    if (host.driver === 'qemu' && host.qemu === undefined) {
      context.addIssue({
        code: 'custom',
        path: ['qemu'],
        message: 'is required with driver qemu (at least incomingCommand and monitorSocket)',
      });
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
export type HostLimits = z.infer<typeof limitsSchema>;
export type QemuHostSettings = z.infer<typeof qemuSchema>;

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

/** Returns the view of a host that producers and the API may show: no credentials, no key paths. */
export function publicHostView(host: HostConfig): { name: string; address: string; driver: string } {
  return { name: host.name, address: host.address, driver: host.driver };
}

/**
 * `ferry api`: run the HTTP API (producers/api) until SIGINT or SIGTERM, and `ferry api token`
 * to make a new API token with the hash the configuration stores.
 */
import type { Command } from 'commander';

import { loadInventory } from '../config/inventory.js';
import { FerryError } from '../errors.js';
import { checkPrefix, openMigrationQueue } from '../jobs/queue.js';
import { quoteValue } from '../jobs/quote.js';
import { requesterPattern } from '../jobs/request.js';
import { createLogger } from '../log.js';
import { exitCodes } from './exit.js';
import { resolveSettings, type GlobalOptions } from './settings.js';

interface ApiOptions extends GlobalOptions {
  config?: string;
  listen?: string;
}

/** Parses HOST:PORT (IPv6 in brackets: [::1]:8080). */
function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (match === null || port > 65535) {
    throw new FerryError(
      'INVALID_CONFIG',
      `Invalid --listen ${quoteValue(text)}: use HOST:PORT, such as 127.0.0.1:8080 or [::1]:8080.`,
      { context: { field: '--listen' } },
    );
  }
  return { host: match[1] ?? match[2] ?? '', port };
}

async function runApi(options: ApiOptions): Promise<number> {
  const settings = resolveSettings(options);
  checkPrefix(settings.prefix);
  const configPath = options.config ?? process.env.FERRY_API_CONFIG ?? 'ferry-api.yaml';
  const inventory = loadInventory(settings.inventoryPath);
  // Loaded here, so that the other commands do not load fastify.
  const { loadApiConfig } = await import('../../producers/api/config.js');
  const { createApiServer } = await import('../../producers/api/server.js');
  const apiSettings = loadApiConfig(configPath, inventory);
  if (options.listen !== undefined) apiSettings.listen = parseListen(options.listen);

  const logger = createLogger({ name: 'ferry-api' });
  const queue = await openMigrationQueue({ redisUrl: settings.redisUrl, prefix: settings.prefix });
  try {
    const server = await createApiServer({ settings: apiSettings, inventory, queue, logger });
    await server.listen();
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    logger.info({ signal }, 'API stopping');
    await server.close();
  } finally {
    await queue.close();
  }
  return exitCodes.ok;
}

async function printToken(name: string): Promise<void> {
  if (!requesterPattern.test(name)) {
    throw new FerryError(
      'INVALID_CONFIG',
      `Invalid --name ${quoteValue(name)}: use 1 to 128 letters, digits, ".", "_", "@", ":" or "-", starting with a letter or digit.`,
      { context: { field: '--name' } },
    );
  }
  const { generateToken, hashToken } = await import('../../producers/api/tokens.js');
  const token = generateToken();
  console.log(`# Give this token to ${name}; it is not stored anywhere and is shown only once:`);
  console.log(`# ${token}`);
  console.log('# Add this entry to the tokens list of the API configuration:');
  console.log(`- name: ${name}\n  sha256: '${hashToken(token)}'`);
}

export function addApiCommand(program: Command): void {
  const api = program
    .command('api')
    .description('run the HTTP API that queues migrations for ticketing systems, chat bots and scripts')
    .option(
      '--config <path>',
      'API configuration YAML or JSON file (default: $FERRY_API_CONFIG, then ./ferry-api.yaml)',
    )
    .option('--listen <host:port>', 'address to listen on, overriding listen in the configuration')
    .addHelpText(
      'after',
      '\nLogs go to stdout as JSON lines; FERRY_LOG_LEVEL sets the level (default info).\n' +
        'SIGINT or SIGTERM closes open event streams and stops the server.',
    )
    .action(async (_options: ApiOptions, command: Command) => {
      process.exitCode = await runApi(command.optsWithGlobals<ApiOptions>());
    });

  api
    .command('token')
    .description('generate a new API token and print the entry for the configuration (its SHA-256)')
    .requiredOption('--name <name>', 'identity of the token: the requester recorded on what it queues')
    .action(async (options: { name: string }) => {
      await printToken(options.name);
      process.exitCode = exitCodes.ok;
    });
}

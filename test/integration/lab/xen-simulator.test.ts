import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NamesTable } from '../../../src/lab/names.js';
import { findFreePort, isListening } from '../../../src/lab/ports.js';
import { TransferLog } from '../../../src/lab/transfers.js';
import { startXenSimulator, type SimHost, type XenSimulator } from '../../../src/lab/xen/simulator.js';
import { renderXendConfig } from '../../../src/lab/xen/xend-config.js';

// 512 MiB at 128 bytes per MiB plus the default 10% of dirty pages.
const BYTES_PER_MIB = 128;
const WEB01_BYTES = Math.round(512 * BYTES_PER_MIB * 1.1);
// Slow enough that a migration of web01 takes about 4 s, so tests can look at it mid-transfer.
const SLOW_RATE = 16 * 1024;
const HEADER = 'Name                                        ID   Mem VCPUs      State   Time(s)';

interface Forward {
  port: number;
  sockets: Set<Socket>;
  server: Server;
}

let dir: string;
let sim: XenSimulator;
let transfers: TransferLog;
let xenA: SimHost;
let xenB: SimHost;
let forwards: Forward[] = [];

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`condition not met within ${timeoutMs} ms: ${condition.toString()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Opens 127.0.0.1:<free port> -> 127.0.0.1:targetPort, as an SSH local forward delivers it. */
async function openForward(targetPort: number): Promise<Forward> {
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = connect({ host: '127.0.0.1', port: targetPort });
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  const port = await findFreePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const forward = { port, sockets, server };
  forwards.push(forward);
  return forward;
}

function names(host: SimHost): string[] {
  return host.domains().map((domain) => domain.name);
}

function domain(host: SimHost, name: string): ReturnType<SimHost['domains']>[number] | undefined {
  return host.domains().find((candidate) => candidate.name === name);
}

/** Runs the generated xm script with bash, as an sshd session would. */
function runScript(
  xmPath: string,
  args: string[],
): { done: Promise<{ stdout: string; stderr: string; code: number | null }>; kill: () => void } {
  const child = spawn('bash', [xmPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ stdout, stderr, code }));
  });
  return { done, kill: () => child.kill('SIGKILL') };
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-xen-sim-'));
  transfers = new TransferLog(join(dir, 'transfers.jsonl'));
  const vm = {
    disks: ['file:/var/lib/xen/images/web01.img'],
    vifs: [{ bridge: 'xenbr0', mac: '00:16:3e:00:00:01' }],
  };
  sim = await startXenSimulator({
    names: new NamesTable([
      { name: 'xen-a', address: '127.0.0.2' },
      { name: 'xen-b', address: '127.0.0.3' },
    ]),
    transfers,
    bytesPerMiB: BYTES_PER_MIB,
    hosts: [
      {
        name: 'xen-a',
        address: '127.0.0.2',
        stateDir: join(dir, 'xen-a'),
        relocationPort: await findFreePort(),
        totalMemoryMiB: 4096,
        storagePaths: ['/var/lib/xen/images'],
        bridges: ['xenbr0', 'xenbr1'],
        domains: [{ name: 'web01', memoryMiB: 512, vcpus: 1, ...vm }],
      },
      {
        name: 'xen-b',
        address: '127.0.0.3',
        stateDir: join(dir, 'xen-b'),
        relocationPort: await findFreePort(),
        totalMemoryMiB: 4096,
        storagePaths: ['/var/lib/xen/images'],
        bridges: ['xenbr0'],
        domains: [
          { name: 'db01', memoryMiB: 256, vcpus: 2, disks: ['file:/var/lib/xen/images/db01.img'], vifs: [] },
        ],
      },
    ],
  });
  xenA = sim.host('xen-a');
  xenB = sim.host('xen-b');
});

afterEach(async () => {
  for (const forward of forwards) {
    for (const socket of forward.sockets) socket.destroy();
    await new Promise((resolve) => forward.server.close(resolve));
  }
  forwards = [];
  await sim.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('xm commands', () => {
  it('lists domains in xm columns', async () => {
    const result = await xenA.run(['list']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(HEADER);
    // Everything up to State is fixed; Time(s) follows right-aligned in 9 columns.
    expect(lines[1]?.slice(0, 69)).toBe(
      'Domain-0                                     0  1024     2     r-----',
    );
    expect(lines[1]?.slice(69)).toMatch(/^ +\d+\.\d$/);
    expect(lines[2]?.slice(0, 69)).toBe(
      'web01                                        1   512     1     -b----',
    );
    expect(lines[2]?.slice(69)).toMatch(/^ +\d+\.\d$/);
    expect(lines[2]).toHaveLength(HEADER.length);
    expect(lines).toHaveLength(3);
  });

  it('lists one domain by name or id', async () => {
    const byName = await xenA.run(['list', 'web01']);
    expect(byName.stdout.trimEnd().split('\n')).toHaveLength(2);
    expect(byName.stdout).toContain('web01');
    const byId = await xenA.run(['list', '1']);
    expect(byId.stdout).toContain('web01');
  });

  it('reports an unknown domain', async () => {
    const result = await xenA.run(['list', 'nope']);
    expect(result).toEqual({ stdout: '', stderr: "Error: Domain 'nope' does not exist.\n", code: 1 });
  });

  it('prints a domain as an s-expression', async () => {
    const result = await xenA.run(['list', '-l', 'web01']);
    expect(result.code).toBe(0);
    expect(result.stdout.startsWith('(domain\n    (domid 1)\n')).toBe(true);
    expect(result.stdout).toContain('    (name web01)\n');
    expect(result.stdout).toContain('    (memory 512)\n');
    expect(result.stdout).toContain('    (state -b----)\n');
    expect(result.stdout).toContain('            (uname file:/var/lib/xen/images/web01.img)\n');
    expect(result.stdout).toContain('            (dev xvda)\n');
    expect(result.stdout).toContain('            (bridge xenbr0)\n');
    expect(result.stdout).toContain('            (mac 00:16:3e:00:00:01)\n');
    expect(result.stdout.endsWith('\n)\n')).toBe(true);
    expect((await xenA.run(['list', '--long', 'web01'])).stdout).toBe(result.stdout);
  });

  it('reports host facts with xm info', async () => {
    const result = await xenB.run(['info']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('host                   : xen-b\n');
    expect(result.stdout).toContain('total_memory           : 4096\n');
    expect(result.stdout).toContain(`free_memory            : ${4096 - 1024 - 256}\n`);
    expect(result.stdout).toContain('xen_major              : 3\n');
    expect(xenB.freeMemoryMiB()).toBe(4096 - 1024 - 256);
  });

  it('rejects unknown commands and bad arguments', async () => {
    const unknown = await xenA.run(['frobnicate']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("Error: unknown subcommand 'frobnicate'.");
    const missing = await xenA.run(['migrate', 'web01']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("Error: 'xm migrate' requires 2 arguments.");
    const badPort = await xenA.run(['migrate', '--port=eighty', 'web01', 'xen-b']);
    expect(badPort.code).toBe(1);
    expect(badPort.stderr).toContain("invalid port 'eighty'");
    expect(domain(xenA, 'web01')?.state).toBe('-b----');
  });

  it('writes state.json on every change', async () => {
    const state = (): { domains: Array<{ name: string }> } =>
      JSON.parse(readFileSync(join(xenA.stateDir, 'state.json'), 'utf8')) as {
        domains: Array<{ name: string }>;
      };
    expect(state().domains.map((entry) => entry.name)).toEqual(['web01']);
    xenA.addDomain({ name: 'mail01', memoryMiB: 128, vcpus: 1, disks: [], vifs: [] });
    expect(state().domains.map((entry) => entry.name)).toEqual(['web01', 'mail01']);
    xenA.removeDomain('mail01');
    expect(state().domains.map((entry) => entry.name)).toEqual(['web01']);
  });

  it('rejects a domain whose disk is missing', () => {
    expect(() =>
      xenA.addDomain({
        name: 'lost',
        memoryMiB: 128,
        vcpus: 1,
        disks: ['file:/elsewhere/lost.img'],
        vifs: [],
      }),
    ).toThrow('/elsewhere/lost.img does not exist');
  });
});

describe('migration', () => {
  it('completes through a loopback forward', async () => {
    const forward = await openForward(xenB.relocationPort);
    const result = await xenA.run(['migrate', '--live', `--port=${forward.port}`, 'web01', 'localhost']);

    expect(result).toEqual({ stdout: '', stderr: '', code: 0 });
    expect(names(xenA)).toEqual([]);
    const arrived = domain(xenB, 'web01');
    expect(arrived?.id).toBe(2);
    expect(arrived?.state).toBe('-b----');
    expect(arrived?.cpuTimeSeconds).toBeLessThan(1);
    expect(arrived?.vifs).toEqual([{ bridge: 'xenbr0', mac: '00:16:3e:00:00:01' }]);
    expect(xenB.freeMemoryMiB()).toBe(4096 - 1024 - 256 - 512);

    const [record] = transfers.all();
    expect(transfers.all()).toHaveLength(1);
    expect(record).toMatchObject({ vm: 'web01', source: 'xen-a', target: 'xen-b', outcome: 'completed' });
    expect(record?.bytes).toBe(WEB01_BYTES);
    expect(record?.end).toBeGreaterThanOrEqual(record?.start ?? Infinity);
    const state = JSON.parse(readFileSync(join(xenB.stateDir, 'state.json'), 'utf8')) as {
      domains: unknown[];
    };
    expect(state.domains).toHaveLength(2);
  });

  it('accepts -l and -p option forms', async () => {
    const forward = await openForward(xenB.relocationPort);
    const result = await xenA.run(['migrate', '-l', '-p', String(forward.port), 'web01', 'localhost']);
    expect(result.code).toBe(0);
    expect(domain(xenB, 'web01')?.state).toBe('-b----');
  });

  it('shows the domain on both hosts mid-transfer', async () => {
    xenA.setTransferRate(SLOW_RATE);
    const forward = await openForward(xenB.relocationPort);
    const running = xenA.run(['migrate', '--live', '--port', String(forward.port), 'web01', 'localhost']);

    await waitFor(() => domain(xenB, 'web01')?.state === '--p---');
    expect(domain(xenA, 'migrating-web01')?.state).toBe('-b----');
    expect(domain(xenA, 'web01')).toBeUndefined();
    expect(domain(xenB, 'web01')?.id).toBe(2);
    expect(xenB.freeMemoryMiB()).toBe(4096 - 1024 - 256 - 512);
    const targetList = await xenB.run(['list', 'web01']);
    expect(targetList.stdout).toMatch(/\n(web01 +2 +512 +1 +--p--- +0\.0)\n$/);
    const sourceList = await xenA.run(['list']);
    expect(sourceList.stdout).toContain('migrating-web01');

    xenA.setTransferRate(undefined);
    expect((await running).code).toBe(0);
    expect(domain(xenB, 'web01')?.state).toBe('-b----');
    expect(names(xenA)).toEqual([]);
  });

  it('paces the stream at the sender rate', async () => {
    xenA.setTransferRate(64 * 1024);
    const forward = await openForward(xenB.relocationPort);
    const started = Date.now();
    const result = await xenA.run(['migrate', '--live', `--port=${forward.port}`, 'web01', 'localhost']);

    expect(result.code).toBe(0);
    // 72,090 bytes at 65,536 bytes per second take about 1.1 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('pauses the source and skips dirty pages without --live', async () => {
    xenA.setTransferRate(SLOW_RATE);
    const forward = await openForward(xenB.relocationPort);
    const running = xenA.run(['migrate', `--port=${forward.port}`, 'web01', 'localhost']);
    await waitFor(() => domain(xenB, 'web01')?.state === '--p---');

    expect(domain(xenA, 'migrating-web01')?.state).toBe('--p---');
    xenA.setTransferRate(undefined);
    expect((await running).code).toBe(0);
    expect(domain(xenB, 'web01')?.state).toBe('-b----');
    expect(transfers.all()[0]?.bytes).toBe(512 * BYTES_PER_MIB);
  });

  it('fails when the target already has the name', async () => {
    xenB.addDomain({ name: 'web01', memoryMiB: 128, vcpus: 1, disks: [], vifs: [] });
    const forward = await openForward(xenB.relocationPort);
    const result = await xenA.run(['migrate', '--live', `--port=${forward.port}`, 'web01', 'localhost']);

    expect(result).toEqual({
      stdout: '',
      stderr: "Error: Domain 'web01' already exists with ID '2'\n",
      code: 1,
    });
    expect(domain(xenA, 'web01')?.state).toBe('-b----');
  });

  it('fails when the target lacks a bridge', async () => {
    xenA.addDomain({ name: 'dmz01', memoryMiB: 128, vcpus: 1, disks: [], vifs: [{ bridge: 'xenbr1' }] });
    const forward = await openForward(xenB.relocationPort);
    const result = await xenA.run(['migrate', '--live', `--port=${forward.port}`, 'dmz01', 'localhost']);

    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'Error: Domain construction failed: Device 0 (vif) could not be connected. Could not find bridge device xenbr1\n',
    );
    expect(xenB.xendLog()).toContain('Domain construction failed');
    expect(domain(xenA, 'dmz01')?.state).toBe('-b----');
    expect(names(xenB)).toEqual(['db01']);
  });

  it('is rejected by the default allow list when direct', async () => {
    const result = await xenA.run(['migrate', '--live', `--port=${xenB.relocationPort}`, 'web01', 'xen-b']);

    expect(result.code).toBe(1);
    expect(result.stderr).toBe("Error: (104, 'Connection reset by peer')\n");
    expect(xenB.xendLog()).toContain('Rejected connection from 127.0.0.2 (xen-a).');
    expect(domain(xenA, 'web01')?.state).toBe('-b----');
    expect(names(xenB)).toEqual(['db01']);
    expect(transfers.all()).toMatchObject([{ vm: 'web01', target: 'xen-b', outcome: 'rejected', bytes: 0 }]);
  });

  it('succeeds direct when the allow list accepts the range', async () => {
    await xenB.writeXendConfig(
      renderXendConfig({ port: xenB.relocationPort, hostsAllow: [String.raw`^127\.0\.0\.[2-3]$`] }),
    );
    const result = await xenA.run(['migrate', '--live', `--port=${xenB.relocationPort}`, 'web01', 'xen-b']);

    expect(result).toEqual({ stdout: '', stderr: '', code: 0 });
    expect(xenB.xendLog()).toContain('Accepted relocation connection from 127.0.0.2 (xen-a).');
    expect(domain(xenB, 'web01')?.state).toBe('-b----');
    expect(names(xenA)).toEqual([]);
    expect(transfers.all()).toMatchObject([{ outcome: 'completed', target: 'xen-b', bytes: WEB01_BYTES }]);
  });

  it('fails at once when relocation is off', async () => {
    await xenB.setRelocationServer(false);
    expect(xenB.xendConfig()).toContain('(xend-relocation-server no)');
    const started = Date.now();
    const result = await xenA.run(['migrate', '--live', `--port=${xenB.relocationPort}`, 'web01', 'xen-b']);

    expect(result).toEqual({ stdout: '', stderr: "Error: can't connect: Connection refused\n", code: 1 });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(domain(xenA, 'web01')?.state).toBe('-b----');
    expect(transfers.all()).toMatchObject([{ outcome: 'failed', target: 'xen-b', bytes: 0 }]);
  });

  it('reports an unknown domain', async () => {
    const result = await xenA.run(['migrate', '--live', `--port=${xenB.relocationPort}`, 'web02', 'xen-b']);
    expect(result).toEqual({ stdout: '', stderr: "Error: Domain 'web02' does not exist.\n", code: 1 });
    expect(transfers.all()).toEqual([]);
  });

  it('fails when the target is short of memory', async () => {
    xenB.addDomain({ name: 'big', memoryMiB: xenB.freeMemoryMiB() - 300, vcpus: 1, disks: [], vifs: [] });
    const forward = await openForward(xenB.relocationPort);
    const result = await xenA.run(['migrate', '--live', `--port=${forward.port}`, 'web01', 'localhost']);

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^Error: Domain construction failed/);
    const log = xenB.xendLog();
    expect(log).toContain(`Balloon: ${300 * 1024} KiB free; need ${512 * 1024}; retries: `);
    expect(log).toContain('Domain construction failed');
    expect(domain(xenA, 'web01')?.state).toBe('-b----');
    expect(names(xenB)).toEqual(['db01', 'big']);
    expect(transfers.all()).toMatchObject([{ outcome: 'failed', target: 'xen-b' }]);
  });

  it('destroys the paused target domain when the stream breaks', async () => {
    xenA.setTransferRate(SLOW_RATE);
    const forward = await openForward(xenB.relocationPort);
    const running = xenA.run(['migrate', '--live', `--port=${forward.port}`, 'web01', 'localhost']);
    await waitFor(() => domain(xenB, 'web01')?.state === '--p---');

    for (const socket of forward.sockets) socket.destroy();
    const result = await running;

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^Error: \((104|32), '(Connection reset by peer|Broken pipe)'\)\n$/);
    expect(names(xenB)).toEqual(['db01']);
    expect(xenB.xendLog()).toMatch(/Restore of web01 failed: the stream ended after \d+ of \d+ bytes/);
    expect(domain(xenA, 'web01')?.state).toBe('-b----');
    const [record] = transfers.all();
    expect(record?.outcome).toBe('failed');
    expect(record?.bytes).toBeGreaterThan(0);
    expect(record?.bytes).toBeLessThan(WEB01_BYTES);
  });

  it('listens on loopback only for address localhost', async () => {
    const port = xenB.relocationPort;
    await xenB.writeXendConfig(renderXendConfig({ port, address: 'localhost' }));
    expect(await isListening('127.0.0.1', port)).toBe(true);
    expect(await isListening('127.0.0.3', port)).toBe(false);
    await xenB.writeXendConfig(renderXendConfig({ port, address: '' }));
    expect(await isListening('127.0.0.3', port)).toBe(true);
  });

  it('applies a hand-edited config on reload', async () => {
    const path = join(xenB.stateDir, 'xend-config.sxp');
    const edited = readFileSync(path, 'utf8').replace(
      '(xend-relocation-server yes)',
      '(xend-relocation-server no)',
    );
    writeFileSync(path, edited);
    await xenB.reloadXendConfig();

    expect(await isListening('127.0.0.3', xenB.relocationPort)).toBe(false);
    expect(await isListening('127.0.0.1', xenB.relocationPort)).toBe(false);
    expect(xenB.xendLog()).toContain('Relocation server disabled');
  });

  it('rejects a config that does not parse', async () => {
    await expect(xenB.writeXendConfig("(xend-relocation-address 'open")).rejects.toThrow('line 1');
    expect(await isListening('127.0.0.3', xenB.relocationPort)).toBe(true);
  });
});

describe('xm script', () => {
  it('runs commands with exit codes', async () => {
    const list = await runScript(xenA.xmPath, ['list']).done;
    expect(list.code).toBe(0);
    expect(list.stderr).toBe('');
    expect(list.stdout.split('\n')[0]).toBe(HEADER);
    expect(list.stdout).toContain('web01');

    const tricky = `web01; echo $HOME "double" 'single' \`id\` \\ * $(rm -rf /nothing) café`;
    const missing = await runScript(xenA.xmPath, ['list', tricky]).done;
    expect(missing).toEqual({ stdout: '', stderr: `Error: Domain '${tricky}' does not exist.\n`, code: 1 });

    const noArgs = await runScript(xenA.xmPath, []).done;
    expect(noArgs.code).toBe(1);
    expect(noArgs.stderr).toContain('Usage: xm');
  });

  it('is readable and executable by other accounts', () => {
    expect(statSync(xenA.xmPath).mode & 0o777).toBe(0o755);
    expect(statSync(join(xenA.stateDir, 'bin')).mode & 0o777).toBe(0o755);
    expect(statSync(xenA.stateDir).mode & 0o777).toBe(0o755);
    expect(statSync(join(xenA.stateDir, 'state.json')).mode & 0o777).toBe(0o644);
    expect(statSync(join(xenA.stateDir, 'xend-config.sxp')).mode & 0o777).toBe(0o644);
    expect(statSync(join(xenA.stateDir, 'xend.log')).mode & 0o777).toBe(0o644);
  });

  it('lets a migration finish after the client dies', async () => {
    xenA.setTransferRate(SLOW_RATE);
    const forward = await openForward(xenB.relocationPort);
    const client = runScript(xenA.xmPath, [
      'migrate',
      '--live',
      `--port=${forward.port}`,
      'web01',
      'localhost',
    ]);
    await waitFor(() => domain(xenB, 'web01')?.state === '--p---');

    client.kill();
    expect((await client.done).code).toBeNull();
    xenA.setTransferRate(undefined);
    await waitFor(() => domain(xenB, 'web01')?.state === '-b----');
    await waitFor(() => transfers.all().length === 1);
    expect(names(xenA)).toEqual([]);
    expect(transfers.all()[0]?.outcome).toBe('completed');
  });
});

describe('stop', () => {
  it('closes every port and is idempotent', async () => {
    const ports: Array<[string, number]> = [
      ['127.0.0.2', xenA.relocationPort],
      ['127.0.0.1', xenA.relocationPort],
      ['127.0.0.3', xenB.relocationPort],
      ['127.0.0.1', xenB.relocationPort],
      ['127.0.0.1', sim.controlPort],
    ];
    for (const [address, port] of ports) expect(await isListening(address, port)).toBe(true);

    await sim.stop();
    await sim.stop();
    for (const [address, port] of ports) expect(await isListening(address, port)).toBe(false);

    const after = await runScript(xenA.xmPath, ['list']).done;
    expect(after.code).toBe(1);
    expect(after.stderr).toBe('Error: Unable to connect to xend: Connection refused. Is xend running?\n');
  });

  it('ends a running migration and keeps the domain on the source', async () => {
    xenA.setTransferRate(SLOW_RATE);
    const forward = await openForward(xenB.relocationPort);
    const running = xenA.run(['migrate', '--live', `--port=${forward.port}`, 'web01', 'localhost']);
    await waitFor(() => domain(xenB, 'web01')?.state === '--p---');

    await sim.stop();
    const result = await running;
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('aborted because the lab simulator stopped');
    expect(domain(xenA, 'web01')?.state).toBe('-b----');
    expect(names(xenB)).toEqual(['db01']);
  });

  it('names the host an unknown name is not', () => {
    expect(() => sim.host('xen-z')).toThrow("no host named 'xen-z'; its hosts are: xen-a, xen-b");
  });
});

// `npm run demo`: the main job in the lab. It starts the lab, a worker and a producer as
// separate `ferry` processes, moves web01 from xen-a to xen-b through a relay tunnel and back
// through a direct tunnel, and prints each verified result. Then it moves the running QEMU VM
// vm01 from kvm-a to kvm-b.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { MigrationResult } from '../types.js';
import { Lab } from './lab.js';

const ferryBin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ferry.mjs');

function ferry(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, [ferryBin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Prints the worker's pino lines as `[worker] message key=value`, without the noise. */
function relayWorkerLog(worker: ChildProcess): void {
  let pending = '';
  worker.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        const { msg, jobId, vm, source, target, attempt, bytes, code } = entry;
        const fields = Object.entries({ jobId, vm, source, target, attempt, bytes, code })
          .filter(([, value]) => value !== undefined)
          .map(([key, value]) => `${key}=${String(value)}`)
          .join(' ');
        console.log(`  [worker] ${String(msg)} ${fields}`);
      } catch {
        if (line.trim() !== '') console.log(`  [worker] ${line}`);
      }
    }
  });
  worker.stderr?.on('data', (chunk: Buffer) => process.stderr.write(`  [worker] ${chunk.toString()}`));
}

async function migrate(vm: string, from: string, to: string, tunnel: string, env: NodeJS.ProcessEnv) {
  console.log(
    `\n$ ferry migrate ${vm} --from ${from} --to ${to} --tunnel ${tunnel} --reason "ferry demo" --wait --json`,
  );
  const producer = ferry(
    [
      'migrate',
      vm,
      '--from',
      from,
      '--to',
      to,
      '--tunnel',
      tunnel,
      '--reason',
      'ferry demo',
      '--wait',
      '--json',
    ],
    env,
  );
  let stdout = '';
  producer.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  producer.stderr?.on('data', (chunk: Buffer) => process.stderr.write(`  [producer] ${chunk.toString()}`));
  const [code] = (await once(producer, 'exit')) as [number | null];
  const report = JSON.parse(stdout) as { state: string; result?: MigrationResult };
  const result = report.result;
  if (result !== undefined) {
    console.log(`  status:   ${result.status}`);
    console.log(
      `  verified: ${(result.observed ?? []).map((seen) => `${seen.host} ${seen.state}`).join(', ')}`,
    );
    console.log(
      `  tunnel:   ${result.tunnel}${result.bytes === undefined ? '' : `, ${result.bytes} bytes through the bastion`}`,
    );
    console.log(
      `  phases:   ${Object.entries(result.phaseMs)
        .map(([phase, ms]) => `${phase} ${ms} ms`)
        .join(', ')}`,
    );
    if (result.downtimeMs !== undefined) console.log(`  downtime: ${result.downtimeMs} ms`);
    console.log(`  attempts: ${result.attempts} on ${result.bastion}`);
    if (result.error !== undefined) console.log(`  error:    ${result.error.code}: ${result.error.message}`);
  }
  return { code, status: report.state };
}

async function showHosts(lab: Lab): Promise<void> {
  for (const host of lab.hosts.filter((candidate) => candidate.qemu === undefined)) {
    const listing = await host.sim.run(['list']);
    console.log(`\n$ xm list   # on ${host.name}\n${listing.stdout.trimEnd()}`);
  }
}

/**
 * Moves the running QEMU VM vm01 from kvm-a to kvm-b and shows its guest's counter before and
 * after: the counter carrying on at the target proves that the VM kept running.
 */
async function moveQemuVm(lab: Lab, env: NodeJS.ProcessEnv) {
  const source = lab.host('kvm-a').qemu;
  const target = lab.host('kvm-b').qemu;
  if (source === undefined || target === undefined) throw new Error('The demo lab lacks its QEMU hosts.');
  console.log(
    `\nQEMU VM vm01 on kvm-a: ${await source.status('vm01')}, guest counter at ${source.ticks('vm01').at(-1)}`,
  );
  const moved = await migrate('vm01', 'kvm-a', 'kvm-b', 'relay', env);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  console.log(
    `  kvm-a: ${await source.status('vm01')}, its last counter ${source.ticks('vm01').at(-1)}; ` +
      `kvm-b: ${await target.status('vm01')}, counting on from ${target.ticks('vm01')[0]} to ${target.ticks('vm01').at(-1)}`,
  );
  return moved;
}

const lab = await Lab.start({
  bytesPerMiB: 16 * 1024,
  hosts: [
    {
      name: 'xen-a',
      domains: [
        {
          name: 'web01',
          memoryMiB: 512,
          vcpus: 1,
          disks: ['file:/srv/xen/web01.img'],
          vifs: [{ bridge: 'xenbr0' }],
        },
      ],
      // 8.8 MB to send at 4 MB/s: long enough to watch the progress.
      transferRateBytesPerSec: 4_000_000,
    },
    { name: 'xen-b', transferRateBytesPerSec: 4_000_000 },
    // A real QEMU VM: 128 MiB at 64 MiB/s takes about two seconds to move.
    {
      name: 'kvm-a',
      qemu: { vms: [{ name: 'vm01', memoryMiB: 128, workingSetMiB: 8 }], maxBandwidthMiBps: 64 },
    },
    { name: 'kvm-b', qemu: {} },
  ],
});
const env = {
  ...process.env,
  FERRY_REDIS_URL: lab.redis?.url,
  FERRY_INVENTORY: lab.inventoryPath,
  FERRY_PREFIX: 'ferry-demo',
  FERRY_REQUESTER: 'demo',
};
let worker: ChildProcess | undefined;
let failed = false;
try {
  console.log(
    `Lab started in ${lab.dir}: ${lab.hosts.map((host) => `${host.name} (${host.address}:${host.sshPort})`).join(', ')}`,
  );
  await showHosts(lab);

  console.log('\n$ ferry worker &');
  worker = ferry(['worker', '--bastion', 'demo-bastion'], env);
  relayWorkerLog(worker);

  const there = await migrate('web01', 'xen-a', 'xen-b', 'relay', env);
  const back = await migrate('web01', 'xen-b', 'xen-a', 'direct', env);
  await showHosts(lab);

  const qemu = await moveQemuVm(lab, env);

  failed =
    there.status !== 'completed' ||
    back.status !== 'completed' ||
    there.code !== 0 ||
    back.code !== 0 ||
    qemu.status !== 'completed' ||
    qemu.code !== 0;
  console.log(
    `\nRelay migration: ${there.status}. Direct migration: ${back.status}. QEMU migration: ${qemu.status}.`,
  );
  console.log(
    `Transfers recorded by the lab: ${lab.transfers
      .all()
      .map((t) => `${t.vm} ${t.source}->${t.target} ${t.outcome} ${t.bytes} B`)
      .join('; ')}`,
  );
} catch (error) {
  failed = true;
  console.error('Demo failed:', error);
} finally {
  if (worker !== undefined && worker.exitCode === null) {
    worker.kill('SIGTERM');
    await once(worker, 'exit');
  }
  await lab.stop();
  console.log('Lab stopped and removed.');
}
process.exit(failed ? 1 : 0);

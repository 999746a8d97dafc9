// `npm run lab`: starts the lab by hand and keeps it running until Ctrl-C, printing how to
// reach each host and how to point ferry at it.
import { Lab } from './lab.js';

const lab = await Lab.start();
const account = lab.account.user;

console.log(`ferry lab running in ${lab.dir}`);
console.log(`Redis:      ${lab.redis?.url ?? '(none)'}`);
console.log(`Inventory:  ${lab.inventoryPath}`);
console.log(`Transfers:  ${lab.transfers.path ?? '(memory only)'}\n`);
for (const host of lab.hosts) {
  console.log(
    `${host.name}  ssh ${host.address}:${host.sshPort}  relocation port ${host.sim.relocationPort}`,
  );
  console.log(
    `  look:   ssh -i ${lab.bastionKey.privatePath} -p ${host.sshPort} ` +
      `-o UserKnownHostsFile=${host.stateDir}/ssh/known_hosts ${account}@${host.address} ${host.sim.xmPath} list`,
  );
  console.log(`  state:  ${host.stateDir}/state.json   xend log: ${host.stateDir}/xend.log`);
}
console.log('\nTry a migration from another terminal:');
console.log(
  `  export FERRY_REDIS_URL=${lab.redis?.url ?? 'redis://127.0.0.1:6379'} FERRY_INVENTORY=${lab.inventoryPath}`,
);
console.log('  npx ferry worker &');
console.log('  npx ferry migrate web01 --from xen-a --to xen-b --reason "lab test" --wait');
console.log('\nPress Ctrl-C to stop the lab and remove its folder.');

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  lab.stop().then(
    () => {
      console.log('lab stopped');
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

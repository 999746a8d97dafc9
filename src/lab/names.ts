/**
 * The lab's names table: every simulated host has its own loopback address, and 127.0.0.1 is
 * `localhost`. The simulator uses it wherever a real host would use DNS: to resolve a peer's
 * name before connecting, and to reverse-resolve a peer's address for xend's allow list.
 */
export class NamesTable {
  readonly #byName = new Map<string, string>();
  readonly #byAddress = new Map<string, string>();

  constructor(entries: ReadonlyArray<{ name: string; address: string }> = []) {
    this.add('localhost', '127.0.0.1');
    for (const entry of entries) this.add(entry.name, entry.address);
  }

  add(name: string, address: string): void {
    const taken = this.#byAddress.get(address);
    if (taken !== undefined && taken !== name) {
      throw new Error(`Lab address ${address} is already named '${taken}'; give '${name}' another address.`);
    }
    this.#byName.set(name, address);
    this.#byAddress.set(address, name);
  }

  /** Returns the address of a name, or the input itself when it is already an IPv4 address. */
  resolve(nameOrAddress: string): string | undefined {
    if (/^\d{1,3}(\.\d{1,3}){3}$/.test(nameOrAddress)) return nameOrAddress;
    return this.#byName.get(nameOrAddress);
  }

  /** Returns the name of an address, as a reverse DNS lookup would. */
  reverse(address: string): string | undefined {
    return this.#byAddress.get(address.replace(/^::ffff:/, ''));
  }

  entries(): Array<{ name: string; address: string }> {
    return [...this.#byName].map(([name, address]) => ({ name, address }));
  }
}

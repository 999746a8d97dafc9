/**
 * The receiving xends' view of each transfer, shared inside the simulator's process so that the
 * sending side can write one complete TransferRecord. Real xends share nothing. The sender uses
 * the ledger only for that record and to wait until the receiver has finished with a failure.
 */

/** The receiver's view of one transfer, from its header to its end. */
export class IncomingTransfer {
  bytesReceived = 0;
  outcome: 'completed' | 'failed' | undefined;
  detail: string | undefined;
  readonly #settled: Promise<void>;
  #resolve: () => void = () => undefined;

  constructor(readonly targetHost: string) {
    this.#settled = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  settle(outcome: 'completed' | 'failed', detail?: string): void {
    if (this.outcome !== undefined) return;
    this.outcome = outcome;
    this.detail = detail;
    this.#resolve();
  }

  /** Resolves once the receiver has finished with the transfer. */
  settled(): Promise<void> {
    return this.#settled;
  }
}

// Bounds the rejections kept for peers that never ask about them, such as port probes.
const MAX_REJECTIONS = 1000;

export class RelocationLedger {
  readonly #incoming = new Map<string, IncomingTransfer>();
  readonly #rejections = new Map<string, string>();

  /** Notes that `targetHost` rejected the peer at `peer` ('ip:port') by its allow list. */
  recordRejection(peer: string, targetHost: string): void {
    this.#rejections.set(peer, targetHost);
    if (this.#rejections.size > MAX_REJECTIONS) {
      const oldest = this.#rejections.keys().next();
      if (oldest.done !== true) this.#rejections.delete(oldest.value);
    }
  }

  /** Returns and removes the host that rejected a connection from `peer`, if one did. */
  takeRejection(peer: string): string | undefined {
    const host = this.#rejections.get(peer);
    this.#rejections.delete(peer);
    return host;
  }

  openIncoming(transferId: string, targetHost: string): IncomingTransfer {
    const transfer = new IncomingTransfer(targetHost);
    this.#incoming.set(transferId, transfer);
    return transfer;
  }

  /** Returns and removes the receiver's view of a transfer, if a receiver read its header. */
  takeIncoming(transferId: string): IncomingTransfer | undefined {
    const transfer = this.#incoming.get(transferId);
    this.#incoming.delete(transferId);
    return transfer;
  }

  peekIncoming(transferId: string): IncomingTransfer | undefined {
    return this.#incoming.get(transferId);
  }
}

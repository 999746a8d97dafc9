/**
 * The sending half of the relocation stream: memory bytes paced by the host's rate limit, and
 * the receiver's replies.
 */
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { LineReader, writeWithBackpressure } from './sockets.js';
import { parseReply } from './wire.js';

const MAX_CHUNK_BYTES = 64 * 1024;
// Paced chunks carry about 50 ms of traffic each, so a new rate takes effect within that time.
const PACED_CHUNKS_PER_SECOND = 20;
const PAYLOAD = Buffer.alloc(MAX_CHUNK_BYTES, 0xa5);

/** The receiver's replies on a migration connection: ACCEPTED, then DONE or ERROR. */
export class ReplyWatcher {
  accepted = false;
  targetError: string | undefined;
  socketError: NodeJS.ErrnoException | undefined;
  ended = false;
  /** Resolves 'done' after DONE, or 'failed' after ERROR or a close before DONE. */
  readonly ending: Promise<'done' | 'failed'>;

  constructor(socket: Socket) {
    const reader = new LineReader(4096);
    this.ending = new Promise((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        for (const line of reader.push(chunk).lines) {
          const reply = parseReply(line);
          if (reply?.kind === 'accepted') this.accepted = true;
          if (reply?.kind === 'done') resolve('done');
          if (reply?.kind === 'error') {
            this.targetError ??= reply.message;
            resolve('failed');
          }
        }
      });
      socket.on('error', (error: NodeJS.ErrnoException) => {
        this.socketError ??= error;
      });
      socket.on('close', () => resolve('failed'));
    });
    void this.ending.then(() => {
      this.ended = true;
    });
  }

  /** Returns the `Error: ...` line that xm prints for a failed migration. */
  errorLine(vm: string, aborted: boolean): string {
    if (aborted) return `Error: migration of '${vm}' was aborted because the lab simulator stopped.`;
    if (this.targetError !== undefined) return `Error: ${this.targetError}`;
    // Python's socket errors, as xend passes them on.
    if (this.accepted && this.socketError?.code === 'EPIPE') return "Error: (32, 'Broken pipe')";
    return "Error: (104, 'Connection reset by peer')";
  }
}

/** Sends `total` memory bytes with backpressure, paced by the host's current rate limit. */
export async function sendMemory(
  socket: Socket,
  host: { transferRate(): number | undefined },
  total: number,
  ended: () => boolean,
  signal: AbortSignal,
): Promise<void> {
  let sent = 0;
  let rate = host.transferRate();
  let windowStart = Date.now();
  let windowBytes = 0;

  while (sent < total && !ended() && !signal.aborted) {
    const currentRate = host.transferRate();
    if (currentRate !== rate) {
      rate = currentRate;
      windowStart = Date.now();
      windowBytes = 0;
    }
    const chunkLimit =
      rate === undefined
        ? MAX_CHUNK_BYTES
        : Math.max(1, Math.min(MAX_CHUNK_BYTES, Math.floor(rate / PACED_CHUNKS_PER_SECOND)));
    const size = Math.min(chunkLimit, total - sent);
    await writeWithBackpressure(socket, PAYLOAD.subarray(0, size));
    sent += size;
    windowBytes += size;

    if (rate !== undefined) {
      const wait = windowStart + (windowBytes / rate) * 1000 - Date.now();
      if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => undefined);
    }
  }
}

/**
 * The two ends of a benchmarked stream, each in a child process (see endpoint-process.ts).
 * The receiver counts bytes on 127.0.0.1. The sender writes a given number of bytes into a
 * port as fast as the path takes them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { snapshotCpu, cpuSecondsBetween } from './cpu.js';
import { repositoryRoot } from './paths.js';

export interface SendRequest {
  port: number;
  bytes: number;
}

export type EndpointMessage =
  | { kind: 'ready'; port: number }
  | { kind: 'received'; bytes: number; endAt: number }
  | { kind: 'receive-error'; message: string; bytes: number }
  | { kind: 'sent'; bytes: number; startAt: number }
  | { kind: 'send-error'; message: string };

/** One stream from sender to receiver. */
export interface StreamFigures {
  bytes: number;
  /** From the sender's connect to the receiver's end of stream. */
  seconds: number;
  /** CPU seconds the sender and receiver used for it. */
  endpointCpuSeconds: number;
}

const processPath = fileURLToPath(new URL('./endpoint-process.ts', import.meta.url));

function startChild(role: 'receiver' | 'sender'): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(processPath, [role], {
    cwd: repositoryRoot,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`The ${role} process did not start within 30 s.`)),
      30_000,
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`The ${role} process exited with code ${code} before it was ready.`));
    });
    child.once('message', (message: EndpointMessage) => {
      clearTimeout(timer);
      if (message.kind === 'ready') resolve({ child, port: message.port });
      else reject(new Error(`The ${role} process sent ${message.kind} before it was ready.`));
    });
  });
}

/** Waits for the next message of `child` that `accept` takes, failing on an error message. */
function nextMessage<T extends EndpointMessage>(
  child: ChildProcess,
  accept: (message: EndpointMessage) => message is T,
  timeoutMs: number,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage);
      reject(new Error(`No reply from the stream endpoint within ${timeoutMs} ms.`));
    }, timeoutMs);
    const onMessage = (message: EndpointMessage): void => {
      if (message.kind === 'receive-error' || message.kind === 'send-error') {
        clearTimeout(timer);
        child.off('message', onMessage);
        reject(new Error(`The stream failed: ${message.message}.`));
        return;
      }
      if (!accept(message)) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve(message);
    };
    child.on('message', onMessage);
  });
}

export class StreamEndpoints {
  private constructor(
    readonly receiver: ChildProcess,
    readonly sender: ChildProcess,
    /** Port of the receiver on 127.0.0.1. */
    readonly receiverPort: number,
  ) {}

  static async start(): Promise<StreamEndpoints> {
    const [receiver, sender] = await Promise.all([startChild('receiver'), startChild('sender')]);
    return new StreamEndpoints(receiver.child, sender.child, receiver.port);
  }

  get pids(): number[] {
    return [this.receiver.pid, this.sender.pid].filter((pid): pid is number => pid !== undefined);
  }

  /**
   * Sends `bytes` into 127.0.0.1:`port`, which must lead to the receiver, and returns the
   * figures once the receiver has counted them all. Throws when fewer bytes arrive.
   */
  async stream(port: number, bytes: number, timeoutMs: number): Promise<StreamFigures> {
    const cpuBefore = snapshotCpu(this.pids);
    const received = nextMessage(
      this.receiver,
      (message): message is Extract<EndpointMessage, { kind: 'received' }> => message.kind === 'received',
      timeoutMs,
    );
    const sent = nextMessage(
      this.sender,
      (message): message is Extract<EndpointMessage, { kind: 'sent' }> => message.kind === 'sent',
      timeoutMs,
    );
    this.sender.send({ port, bytes } satisfies SendRequest);
    const [arrived, departed] = await Promise.all([received, sent]);
    const endpointCpuSeconds = cpuSecondsBetween(cpuBefore, snapshotCpu(this.pids));
    if (arrived.bytes !== bytes) {
      throw new Error(
        `The receiver counted ${arrived.bytes} bytes of the ${bytes} sent through port ${port}.`,
      );
    }
    return { bytes, seconds: (arrived.endAt - departed.startAt) / 1000, endpointCpuSeconds };
  }

  async stop(): Promise<void> {
    for (const child of [this.receiver, this.sender]) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  }
}

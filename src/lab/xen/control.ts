/**
 * The control server that the generated `xm` scripts talk to, on 127.0.0.1.
 *
 * Request: NUL-terminated fields `XM1`, host name, argument count, then each argument. No
 * field is ever evaluated, so arguments may contain spaces, quotes or `$`.
 * Response: one line `XM1 <exit code> <stdout bytes> <stderr bytes>`, then the stdout bytes,
 * then the stderr bytes, then the end of the connection.
 */
import { createServer, type Socket } from 'node:net';
import { closeServer, listenOn, type SocketSet } from './sockets.js';
import type { XmResult } from './types.js';

export const CONTROL_MAGIC = 'XM1';

// Bounds on what a client may send; real command lines are far smaller.
const MAX_REQUEST_BYTES = 1024 * 1024;
const MAX_ARGUMENTS = 4096;

/** Runs `xm ARGS` on the named host; returns undefined when there is no such host. */
export type XmDispatcher = (hostName: string, args: string[]) => Promise<XmResult> | undefined;

export interface ControlServer {
  port: number;
  close(): Promise<void>;
}

/** Parses a complete request, returns 'incomplete' while fields are missing, or an error text. */
export function parseControlRequest(
  buffer: Buffer,
): { host: string; args: string[] } | 'incomplete' | string {
  const fields: string[] = [];
  let start = 0;
  for (;;) {
    const end = buffer.indexOf(0, start);
    if (end === -1) break;
    fields.push(buffer.subarray(start, end).toString('utf8'));
    start = end + 1;
    if (fields.length >= 3) {
      const count = /^\d+$/.test(fields[2] as string) ? Number(fields[2]) : NaN;
      if (!(count <= MAX_ARGUMENTS)) return `invalid argument count '${fields[2] ?? ''}'`;
      if (fields.length === 3 + count) break;
    }
  }
  if (fields.length >= 1 && fields[0] !== CONTROL_MAGIC) return 'the request does not start with XM1';
  if (fields.length < 3 || fields.length < 3 + Number(fields[2])) return 'incomplete';
  return { host: fields[1] as string, args: fields.slice(3) };
}

/** Encodes a response frame. */
export function encodeControlResponse(result: XmResult): Buffer {
  const stdout = Buffer.from(result.stdout, 'utf8');
  const stderr = Buffer.from(result.stderr, 'utf8');
  const head = Buffer.from(`${CONTROL_MAGIC} ${result.code} ${stdout.length} ${stderr.length}\n`, 'utf8');
  return Buffer.concat([head, stdout, stderr]);
}

function respond(socket: Socket, result: XmResult): void {
  // A client that went away (its ssh session died) gets nothing; the command has still run.
  if (socket.destroyed || socket.writableEnded) return;
  socket.end(encodeControlResponse(result));
}

/** Starts the control server on 127.0.0.1 at a free port. */
export async function startControlServer(
  dispatch: XmDispatcher,
  sockets: SocketSet,
  log: (line: string) => void,
): Promise<ControlServer> {
  const server = createServer((socket) => {
    sockets.track(socket);
    socket.on('error', () => undefined);
    let buffer = Buffer.alloc(0);
    let handled = false;

    socket.on('data', (chunk: Buffer) => {
      if (handled) return;
      buffer = Buffer.concat([buffer, chunk]);
      const request =
        buffer.length > MAX_REQUEST_BYTES ? 'the request is too large' : parseControlRequest(buffer);
      if (request === 'incomplete') return;

      handled = true;
      if (typeof request === 'string') {
        log(`xm control: rejected a malformed request: ${request}`);
        respond(socket, {
          stdout: '',
          stderr: `Error: malformed request to the lab's xend: ${request}.\n`,
          code: 1,
        });
        return;
      }
      const running = dispatch(request.host, request.args);
      if (running === undefined) {
        log(`xm control: rejected a request for the unknown host '${request.host}'.`);
        const message = `Error: the lab has no Xen host named '${request.host}'; regenerate this xm script.\n`;
        respond(socket, { stdout: '', stderr: message, code: 1 });
        return;
      }
      running.then(
        (result) => respond(socket, result),
        (error: unknown) => {
          log(`xm control: ${request.host} failed to run xm ${request.args.join(' ')}: ${String(error)}`);
          respond(socket, { stdout: '', stderr: `Error: ${String(error)}\n`, code: 1 });
        },
      );
    });
  });

  await listenOn(server, '127.0.0.1', 0);
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new Error('The xm control server has no TCP port.');
  }
  return { port: address.port, close: () => closeServer(server) };
}

/**
 * A platform backend for tests: a real HTTP server on port 0 that verifies `X-Apix-Signature` on every
 * request (src/backend/signature.ts), records what it got, and answers with what the test's `answer` returns
 * (or hangs, or sends garbage, as told).
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifySignature, SIGNATURE_HEADER } from '../../src/backend/signature.ts';

export const BACKEND_SECRET = 'backend-secret-0123456789';

export interface ReceivedCall {
  readonly path: string;
  readonly body: any;
  /** Why the signature was refused; undefined when it was good. */
  readonly signatureError: string | undefined;
}

/** What to answer: a JSON value (status 200 unless given), raw text, or nothing at all (hang). */
export type Answer = { json: unknown; status?: number } | { raw: string; status?: number } | 'hang';

export class BackendReceiver {
  readonly calls: ReceivedCall[] = [];
  answer: (call: ReceivedCall) => Answer = () => ({ json: { result: {} } });
  private readonly hanging = new Set<ServerResponse>();
  private constructor(
    readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<BackendReceiver> {
    const bound: { receiver?: BackendReceiver } = {};
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () =>
        bound.receiver!.handle(req.url ?? '/', req.headers, Buffer.concat(chunks).toString(), res),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    return (bound.receiver = new BackendReceiver(server, `http://127.0.0.1:${port}`));
  }

  private handle(path: string, headers: IncomingHttpHeaders, text: string, res: ServerResponse): void {
    const header = headers[SIGNATURE_HEADER.toLowerCase()];
    const signatureError = verifySignature(
      BACKEND_SECRET,
      text,
      Array.isArray(header) ? header[0] : header,
      Date.now(),
    );
    const call: ReceivedCall = { path, body: JSON.parse(text), signatureError };
    this.calls.push(call);
    const answer = signatureError
      ? ({ json: { error: { code: 'UNAUTHORIZED', message: signatureError } }, status: 401 } as Answer)
      : this.answer(call);
    if (answer === 'hang') {
      this.hanging.add(res);
      return;
    }
    const body = 'json' in answer ? JSON.stringify(answer.json) : answer.raw;
    res.writeHead(answer.status ?? 200, { 'content-type': 'application/json' });
    res.end(body);
  }

  callsTo(kind: string): ReceivedCall[] {
    return this.calls.filter((c) => c.body.kind === kind);
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeAllConnections();
  }
}

/** The webhook sender against real local servers: success on 2xx, a failure otherwise, and a deadline. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { httpSender } from '../../../src/webhooks/sender.ts';
import { verifySignature } from '../../../src/backend/signature.ts';

async function withServer(handler: RequestListener, run: (url: string) => Promise<void>): Promise<void> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

describe('httpSender', () => {
  const send = httpSender({ timeoutMs: 300, allowPrivate: true, now: Date.now });

  it('POSTs the body signed; a 2xx is success, another status a failure', async () => {
    let status = 204;
    let verdict: string | undefined = 'not called';
    await withServer(
      (req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          verdict = verifySignature('sec', body, req.headers['x-apix-signature'] as string, Date.now());
          res.writeHead(status).end();
        });
      },
      async (url) => {
        assert.equal(await send(url, 'sec', '{"events":[]}'), undefined);
        assert.equal(verdict, undefined, 'a good signature');
        status = 503;
        assert.equal(await send(url, 'sec', '{"events":[]}'), 'HTTP 503');
      },
    );
  });

  it('a receiver that trickles its answer forever is cut at the deadline', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200);
        // One byte every 100 ms: never idle for the timeout, never done.
        const t = setInterval(() => res.write('.'), 100);
        res.on('close', () => clearInterval(t));
      },
      async (url) => {
        assert.match((await send(url, 'sec', '{}'))!, /no answer within 300 ms|aborted/);
      },
    );
  });
});

/**
 * The receivers of docs/backend.md, taken from the page as they are (Node, and Python with the standard
 * library only), run as processes against a real gateway: each gets the webhooks, verifies their
 * signature, and refuses a request whose signature does not match.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient, startNode, token } from '../../support/gateway.ts';
import { freePort } from '../../support/redis.ts';
import { waitFor } from '../../support/wait.ts';
import { signatureHeader } from '../../../src/backend/signature.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { webhookConfig } from '../../support/webhook-receiver.ts';

const page = readFileSync(new URL('../../../docs/backend.md', import.meta.url), 'utf8');

function block(heading: string, lang: string): string {
  const at = page.indexOf(heading);
  assert.ok(at >= 0, heading);
  const start = page.indexOf('```' + lang + '\n', at) + lang.length + 4;
  return page.slice(start, page.indexOf('\n```', start));
}

const python = spawnSync('python3', ['--version']).status === 0;
const RECEIVERS = [
  {
    name: 'Node',
    file: 'receiver.mjs',
    code: block('### A webhook receiver in Node', 'js'),
    cmd: process.execPath,
    skip: false,
  },
  {
    name: 'Python',
    file: 'receiver.py',
    code: block('### A webhook receiver in Python', 'python'),
    cmd: 'python3',
    skip: python ? false : 'python3 is not installed',
  },
];

describe('the receivers of docs/backend.md', () => {
  let node: ApiXNode;
  const dir = mkdtempSync(join(tmpdir(), 'apix-whdoc-'));
  before(async () => {
    node = await startNode(webhookConfig());
  });
  after(() => node.close());

  for (const r of RECEIVERS)
    it(
      `${r.name}: receives and verifies the webhooks, refuses a bad signature`,
      { skip: process.env.CI === 'true' ? false : r.skip },
      async () => {
        const admin = await token({ sub: 'ops', roles: ['admin'] });
        const port = await freePort();
        const res = await fetch(`${node.httpUrl}/v1/admin/webhooks`, {
          method: 'POST',
          headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
          body: JSON.stringify({ url: `http://127.0.0.1:${port}/`, events: ['connection.opened'] }),
        });
        const made = (await res.json()) as { id: string; secret: string };
        const file = join(dir, r.file);
        writeFileSync(file, r.code);
        let out = '';
        const child: ChildProcess = spawn(r.cmd, [file], {
          env: { PATH: process.env.PATH ?? '', WEBHOOK_SECRET: made.secret, PORT: String(port) },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        child.stdout!.on('data', (d) => (out += d));
        child.stderr!.on('data', (d) => (out += d));
        try {
          const post = (sig: string) =>
            fetch(`http://127.0.0.1:${port}/`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'x-apix-signature': sig },
              body: '{"events":[]}',
            }).then(
              (x) => x.status,
              () => 0,
            );
          await waitFor(
            async () => (await post('t=0,v1=00')) !== 0,
            20_000,
            `the ${r.name} receiver listening: ${out}`,
          );
          assert.equal(await post(signatureHeader('not-the-secret', '{"events":[]}', Date.now())), 401);
          assert.equal(
            await post(signatureHeader(made.secret, '{"events":[]}', Date.now() - 600_000)),
            401,
            'stale',
          );
          const c = await RawClient.connect(node.wsUrl, { token: await token({ sub: `doc-${r.name}` }) });
          await waitFor(
            () => out.includes(`connection.opened acme`) && out.includes(`doc-${r.name}`),
            20_000,
            `the event: ${out}`,
          );
          c.close();
        } finally {
          child.kill('SIGKILL');
          await fetch(`${node.httpUrl}/v1/admin/webhooks/${made.id}`, {
            method: 'DELETE',
            headers: { authorization: `Bearer ${admin}` },
          });
        }
      },
    );
});

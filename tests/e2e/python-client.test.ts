/**
 * A client in another language, written from docs/protocol.md alone: examples/python/apix_client.py
 * (Python standard library only) connects, subscribes, publishes over WebSocket and HTTP, replays with
 * `since`, drops its connection and resumes, then the same over SSE (a ticket, `Last-Event-ID`) and a
 * WebSocket session resumed over SSE, against a real node. Without python3 the test skips loudly,
 * except under CI=true, where that is a failure.
 */
import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startNode, token } from '../support/gateway.ts';
import type { ApiXNode } from '../../src/node.ts';

const SCRIPT = fileURLToPath(new URL('../../examples/python/apix_client.py', import.meta.url));

function skipWithoutPython(): string | false {
  if (spawnSync('python3', ['--version']).status === 0) return false;
  const msg = 'python3 not found: the Python client test cannot run';
  if (process.env.CI === 'true') throw new Error(`${msg}; CI=true requires it`);
  console.warn(`\n!!!!!!!! ${msg}; SKIPPING it. apt-get install -y python3. !!!!!!!!\n`);
  return 'python3 not installed';
}

describe('a Python client written from docs/protocol.md', { skip: skipWithoutPython() }, () => {
  let node: ApiXNode;
  before(async () => {
    node = await startNode();
  });
  after(() => node.close());

  it('connects, subscribes, publishes, replays with since and resumes: every step passes', async () => {
    const { port } = new URL(node.wsUrl);
    const tok = await token({ sub: 'py', roles: ['service'] }); // it publishes agent events: a service
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile('python3', [SCRIPT, '127.0.0.1', port, tok], { timeout: 30_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    assert.equal(out.code, 0, out.stdout + out.stderr);
    const passed = out.stdout.split('\n').filter((l) => l.startsWith('PASS '));
    assert.equal(passed.length, 12, out.stdout);
    assert.doesNotMatch(out.stdout, /FAIL/);
  });
});

describe(
  'a Python client written from docs/protocol.md and docs/streams.md: streams',
  { skip: skipWithoutPython() },
  () => {
    let node: ApiXNode;
    before(async () => {
      node = await startNode();
    });
    after(() => node.close());

    it('a late joiner, a dropped-and-resumed subscriber and a live one end with the same text, seq chain whole', async () => {
      const { port } = new URL(node.wsUrl);
      const tok = await token({ sub: 'py', roles: ['service'] });
      const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          'python3',
          [SCRIPT, '127.0.0.1', port, tok, 'streams'],
          { timeout: 60_000 },
          (err, stdout, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
      assert.equal(out.code, 0, out.stdout + out.stderr);
      const passed = out.stdout.split('\n').filter((l) => l.startsWith('PASS '));
      assert.equal(passed.length, 8, out.stdout);
      assert.doesNotMatch(out.stdout, /FAIL/);
    });
  },
);

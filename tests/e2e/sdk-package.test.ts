/**
 * @apix/sdk as a user gets it: `npm pack` in packages/sdk (of the dist/ that `npm ci`'s build made: packing
 * with its prepack build would rebuild dist/ under the other tests that import it), the tarball installed into a fresh project
 * outside this repository (its dependencies from the npm registry, or npm's cache when offline), then
 *   - the tarball holds ESM bundles and declarations only: no server code, no @apix/protocol import;
 *   - a TypeScript program using it typechecks (strict, skipLibCheck off) and runs against a real node:
 *     `apix serve` as a process (what `npm start` runs, tests/support/process.ts), configured only by the
 *     environment variables of docs/configuration.md;
 *   - the React hooks (`@apix/sdk/react`) render in a real Chromium, bundled from the installed package,
 *     and show the events a service publishes (`useApiXChannel`) and the answer it streams, piece by
 *     piece (`useAgentStream`).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import { RawClient, token as signToken } from '../support/gateway.ts';
import type { TokenClaims } from '../support/gateway.ts';
import { spawnGateway } from '../support/process.ts';
import type { GatewayProcess } from '../support/process.ts';
import { waitFor } from '../support/wait.ts';
import { launchChromium, skipWithoutChromium } from '../support/chromium.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SDK = join(ROOT, 'packages', 'sdk');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const SECRET = 'sdk-package-secret-0123456789abcdef';
/** A static key in security.md's format `apix_<keyId>_<secret>`, given by APIX_API_KEYS. */
const API_KEY = 'apix_sdkpack_3f9c2a7d51e84b06';

const token = (claims: TokenClaims) => signToken({ ...claims, secret: SECRET });

/** A gauge of the node, as its /metrics exposes it (the sum of its series). */
async function gaugeOf(node: GatewayProcess, name: string): Promise<number> {
  const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
  const values = text
    .split('\n')
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)));
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0);
}

function run(
  cmd: string,
  args: readonly string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: 300_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function mustRun(cmd: string, args: readonly string[], cwd: string): Promise<string> {
  const r = await run(cmd, args, cwd);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} in ${cwd}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The version this repository installed, so that npm can take the same one from its cache. */
function installedVersion(name: string): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8'));
  return (pkg as { version: string }).version;
}

const CONSUMER_TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    skipLibCheck: false,
    lib: ['ES2023', 'DOM'],
    types: ['node'],
    outDir: 'out',
  },
  include: ['main.ts'],
};

/** A service written against the installed package: publish, receive, print what happened. */
const CONSUMER_MAIN = `
import { WebSocket } from 'ws';
import { ApiXClient, isApiXError, type ApiXEvent } from '@apix/sdk';

const [url = '', token = ''] = process.argv.slice(2);
const client = new ApiXClient({ url, token, clientType: 'INTERNAL_SERVICE', WebSocket });
const seen: ApiXEvent<'agent_status_update'>[] = [];
await client.connect();
const sub = client.subscribe('agent:a1');
sub.on('agent_status_update', (event) => {
  const status: string = event.payload.status;
  // @ts-expect-error the payload is typed from the protocol's schemas, not any
  const wrong: number = event.payload.agentId;
  void wrong;
  void status;
  seen.push(event);
});
await sub.ready;
const published = await client.publish('agent:a1', 'agent_status_update', { agentId: 'a1', status: 'thinking' });
try {
  await client.publish('agent:a1', 'bad type!', {});
} catch (err) {
  console.log(JSON.stringify({ refused: isApiXError(err) ? err.code : String(err) }));
}
while (seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
console.log(JSON.stringify({ published: published.id, received: seen.map((e) => e.id), status: seen[0]?.payload.status }));
await client.close();
`;

/** A page on the hooks: two components on one channel, the connection state, the subscription status. */
const CONSUMER_PAGE = `
import { createElement, useMemo } from 'react';
import { createRoot } from 'react-dom/client';
import { useAgentStream, useApiXChannel, useApiXClient } from '@apix/sdk/react';

const params = new URLSearchParams(location.hash.slice(1));

function Feed(props: { id: string; client: Parameters<typeof useApiXChannel>[0]; types?: string[] }) {
  const { events, status } = useApiXChannel(props.client, 'agent:a1', props.types ? { types: props.types } : {});
  return createElement('ol', { id: props.id, 'data-status': status.state },
    events.map((e) => createElement('li', { key: e.id, 'data-id': e.id }, e.type)));
}

function Answer(props: { client: Parameters<typeof useAgentStream>[0] }) {
  const { streams, latest } = useAgentStream(props.client, 'agent:a1', { eventType: 'agent_message' });
  return createElement('p', { id: 'answer', 'data-status': latest?.status ?? 'none', 'data-count': streams.length },
    latest?.text ?? '');
}

function App() {
  const options = useMemo(() => ({ url: params.get('url') ?? '', token: params.get('token') ?? '', clientType: 'WEB_APP' as const }), []);
  const { client, state } = useApiXClient(options);
  return createElement('main', null,
    createElement('p', { id: 'state', 'data-state': state }, state),
    createElement(Feed, { id: 'all', client }),
    createElement(Feed, { id: 'done', client, types: ['agent_status_update'] }),
    createElement(Answer, { client }));
}

const root = createRoot(document.getElementById('root')!);
root.render(createElement(App));
(window as unknown as { unmountApp: () => void }).unmountApp = () => root.unmount();
`;

describe('@apix/sdk packed, installed in a fresh project', { timeout: 600_000 }, () => {
  let work: string;
  let project: string;
  let node: GatewayProcess;
  let tarball: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'apix-sdk-pack-'));
    project = join(work, 'consumer');
    const packed = await mustRun(
      'npm',
      ['pack', '--silent', '--ignore-scripts', '--pack-destination', work],
      SDK,
    );
    tarball = join(work, packed.trim().split('\n').pop()!);
    await mustRun('mkdir', ['-p', project], work);
    const deps: Record<string, string> = { '@apix/sdk': `file:${tarball}` };
    for (const name of ['ws', '@types/ws', '@types/node', 'react', 'react-dom', '@types/react'])
      deps[name] = installedVersion(name);
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: deps }),
    );
    await mustRun('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], project);
    node = await spawnGateway({
      APIX_DATA_DIR: join(work, 'data'),
      APIX_JWT_SECRET: SECRET,
      APIX_API_KEYS: `acme:${API_KEY}`,
    });
  });
  after(async () => {
    await node?.kill('SIGTERM');
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds ESM bundles and declarations only: no server code, no workspace import', async () => {
    const installed = join(project, 'node_modules', '@apix', 'sdk');
    const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
    assert.equal(pkg.type, 'module');
    assert.deepEqual(Object.keys(pkg.dependencies ?? {}), ['zod']);
    const files = (await mustRun('tar', ['tzf', tarball], work)).trim().split('\n');
    for (const f of files) assert.match(f, /^package\/(package\.json|README\.md|dist\/.+)$/, f);
    const js = files.filter((f) => f.endsWith('.js')).map((f) => f.replace(/^package\//, ''));
    assert.ok(js.includes('dist/index.js') && js.includes('dist/react.js'), js.join(', '));
    for (const f of js) {
      const code = readFileSync(join(installed, f), 'utf8');
      assert.doesNotMatch(code, /require\(|node:|ioredis|prisma|pglite|prom-client/, f);
      assert.doesNotMatch(code, /@apix\/protocol/, `${f} imports the workspace package`);
    }
    const types = readdirSync(join(installed, 'dist', 'types', 'protocol', 'src'));
    assert.ok(types.includes('schemas.d.ts'), types.join(', '));
  });

  it('a TypeScript program typechecks against its declarations and runs against a real node', async () => {
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(CONSUMER_TSCONFIG));
    writeFileSync(join(project, 'main.ts'), CONSUMER_MAIN);
    await mustRun(process.execPath, [TSC, '-p', '.'], project);
    const jwt = await token({ sub: 'svc', roles: ['service'] });
    const out = await mustRun(process.execPath, [join(project, 'out', 'main.js'), node.wsUrl, jwt], project);
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines[0], { refused: 'BAD_REQUEST' });
    const result = lines[1] as { published: string; received: string[]; status: string };
    assert.deepEqual(result.received, [result.published]);
    assert.equal(result.status, 'thinking');
  });

  describe('React hooks in Chromium', { skip: skipWithoutChromium() }, () => {
    let browser: Browser;
    let server: Server;
    before(async () => {
      writeFileSync(join(project, 'page.ts'), CONSUMER_PAGE);
      const bundle = await build({
        absWorkingDir: project,
        entryPoints: ['page.ts'],
        bundle: true,
        format: 'esm',
        platform: 'browser',
        target: 'es2022',
        write: false,
        logLevel: 'silent',
        define: { 'process.env.NODE_ENV': '"development"' },
      });
      const script = bundle.outputFiles[0]!.text;
      const html = '<!doctype html><div id="root"></div><script type="module" src="/page.js"></script>';
      server = createServer((req, res) => {
        const url = req.url ?? '/';
        // examples/browser as its instructions serve it: the repository's files, statically.
        if (url.startsWith('/examples/browser/') || url.startsWith('/packages/sdk/dist/')) {
          const file = join(ROOT, url.endsWith('/') ? `${url}index.html` : url);
          try {
            const body = readFileSync(file);
            res.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript' : 'text/html' });
            res.end(body);
          } catch {
            res.writeHead(404).end();
          }
          return;
        }
        const js = url === '/page.js';
        res.writeHead(200, { 'content-type': js ? 'text/javascript' : 'text/html' });
        res.end(js ? script : html);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      browser = await launchChromium();
    });
    after(async () => {
      await browser?.close();
      await new Promise((resolve) => server?.close(resolve));
    });

    it('render the events a service publishes, in both components sharing one subscription', async () => {
      const gauge = (name: string) => gaugeOf(node, name);
      // The program of the test before may have left a session awaiting resume: count from here.
      const subscriptionsBefore = await gauge('apix_subscriptions');
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      const jwt = await token({ sub: 'alice', roles: ['member'] });
      const { port } = server.address() as AddressInfo;
      await page.goto(`http://127.0.0.1:${port}/#${new URLSearchParams({ url: node.wsUrl, token: jwt })}`);
      await page.waitForSelector('#state[data-state="connected"]', { state: 'attached', timeout: 30_000 });
      await page.waitForSelector('#all[data-status="subscribed"]', { state: 'attached', timeout: 30_000 });
      await page.waitForSelector('#done[data-status="subscribed"]', { state: 'attached', timeout: 30_000 });

      const ids: string[] = [];
      for (const [type, payload] of [
        ['agent_status_update', { agentId: 'a1', status: 'thinking' }],
        ['note', { text: 'not an agent status' }],
        ['agent_status_update', { agentId: 'a1', status: 'completed' }],
      ] as const) {
        const r = await fetch(`${node.httpUrl}/v1/publish`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ channel: 'agent:a1', type, payload }),
        });
        const body = (await r.json()) as { id: string };
        assert.equal(r.status, 200, JSON.stringify(body));
        ids.push(body.id);
      }
      await page.waitForFunction(() => document.querySelectorAll('#all li').length >= 3, null, {
        timeout: 30_000,
      });
      const shown = (sel: string) =>
        page.$$eval(sel, (items) => items.map((li) => (li as HTMLElement).dataset.id ?? ''));
      assert.deepEqual(await shown('#all li'), ids);
      assert.deepEqual(await shown('#done li'), [ids[0], ids[2]]);
      // useAgentStream: a service streams an answer (raw frames, docs/protocol.md §14); the page shows it
      // growing, then complete.
      const service = await RawClient.connect(node.wsUrl, { token: API_KEY, clientType: 'INTERNAL_SERVICE' });
      const frame = (type: string, payload: unknown) => service.send({ type, channel: 'agent:a1', payload });
      frame('stream.start', { streamId: 'answer1', eventType: 'agent_message', data: { agentId: 'a1' } });
      frame('stream.append', { streamId: 'answer1', text: 'Hel' });
      await page.waitForSelector('#answer[data-status="streaming"]', { state: 'attached', timeout: 30_000 });
      frame('stream.append', { streamId: 'answer1', text: 'lo' });
      frame('stream.end', { streamId: 'answer1', status: 'complete' });
      await page.waitForSelector('#answer[data-status="complete"]', { state: 'attached', timeout: 30_000 });
      assert.equal(await page.textContent('#answer'), 'Hello');
      assert.equal(await page.getAttribute('#answer', 'data-count'), '1');
      service.close();
      // Every component on one subscription: one subscriber on the node (the page's), not three.
      assert.equal(await gauge('apix_subscriptions'), subscriptionsBefore + 1);
      await page.evaluate(() => (window as unknown as { unmountApp: () => void }).unmountApp());
      await waitFor(async () => (await gauge('apix_connections')) === 0, 30_000, 'the client to close');
      assert.deepEqual(errors, []);
      await page.close();
    });

    it('examples/browser connects, subscribes and publishes with the built SDK (the build made it)', async () => {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      const { port } = server.address() as AddressInfo;
      await page.goto(`http://127.0.0.1:${port}/examples/browser/`);
      await page.fill('#url', node.wsUrl.replace(/\/v1\/ws$/, ''));
      await page.fill('#token', await token({ sub: 'bob', roles: ['member'] }));
      await page.click('#form button:not([type])');
      await page.waitForSelector('#state:text("connected")', { state: 'attached', timeout: 30_000 });
      await page.waitForSelector('#publish:not([disabled])', { state: 'attached', timeout: 30_000 });
      await page.click('#publish');
      await page
        .waitForFunction(() => /note\.created/.test(document.getElementById('log')!.textContent!), null, {
          timeout: 30_000,
        })
        .catch(async (err: Error) => {
          throw new Error(`${err.message}; the page's log:\n${await page.textContent('#log')}`);
        });
      const log = await page.textContent('#log');
      assert.match(log ?? '', /published \S+ \(sent\)/);
      assert.deepEqual(errors, []);
      await page.close();
    });
  });
});

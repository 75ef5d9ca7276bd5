/**
 * Attack suite, every HTTP route with malformed input (issue 13 item 8): the routes are read from the
 * node's router (none is listed by hand), each one is requested with malformed path segments (bad
 * percent-encoding, overlong UTF-8, lone surrogates, huge values) and malformed query values (out of range
 * numbers and dates, bad escapes), without a credential, as a member and as an admin. No answer may be a
 * 5xx, and nothing may be logged as an error: client input is answered with a 4xx of the error registry.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../../src/log.ts';
import { systemClock } from '../../../src/clock.ts';
import { openRecords } from '../../../src/records.ts';
import type { Records } from '../../../src/records.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { ERRORS } from '@apix/protocol';
import { registerFeedExample, registerSdkBundle } from '../../../src/http/examples.ts';
import { config, startNode, token } from '../../support/gateway.ts';
import { pgliteTemplate } from '../../support/databases.ts';
import { LogCapture, portOf, rawHttp } from './helpers.ts';

/** Path segments as sent on the wire (already percent-encoded, or deliberately not). */
const BAD_SEGMENTS = [
  '%ZZ',
  '%',
  '%E0%A4%A',
  '%ff%fe',
  'room%C0%AFx',
  '%ED%A0%80',
  '%00',
  'a%0D%0ASet-Cookie:x=y',
  '%2F..%2F..%2Fetc',
  '..',
  '%F0%9F%98%80',
  '%22%3Cscript%3E',
  'room:a',
  'x'.repeat(4000),
  `room:${'%C3%A9'.repeat(300)}`,
];

/** Query values as sent on the wire. */
const BAD_VALUES = [
  '99999999999999999',
  '8640000000000001',
  '-8640000000000001',
  '3000000000',
  '9007199254740993',
  '-1',
  '1e400',
  'NaN',
  '1.5',
  '%ZZ',
  '%00',
  '%E0%A4%A',
  '0-0',
  '99999999999999999999-0',
  '1-99999999999999999999',
  '275760-09-13T00:00:00.001Z',
  'x'.repeat(3000),
];
const QUERY_KEYS = ['since', 'limit', 'afterSeq', 'type', 'last', 'gc', 'cursor'];

/**
 * The concrete paths of a route pattern with `value` in each free segment: the router's patterns are
 * literals, optional trailing slashes, optional non-capturing groups (which may hold one capture), alternations of literals and
 * character-class captures. Anything else fails the test, so that a new kind of route gets walked too.
 */
function pathsOf(pattern: RegExp, value: string): string[] {
  let s = pattern.source;
  assert.ok(s.startsWith('^') && s.endsWith('$'), `route ${s} is not anchored`);
  s = s
    .slice(1, -1)
    .replaceAll('\\/?', '')
    .replace(/\(\?:[^()]*\)\?/g, '')
    // An optional group holding one capture (e.g. `(?:([^/]+)\/)?`): walked without it, as the plain ones.
    .replace(/\(\?:[^()]*\([^()]*\)[^()]*\)\?/g, '');
  let paths = [''];
  const token = /\(([^()]*)\)|\\(.)|([^\\()]+)/g;
  let m: RegExpExecArray | null;
  while ((m = token.exec(s)) !== null) {
    let options: string[];
    if (m[1] !== undefined) {
      const group = m[1];
      if (/^\[[^\]]+\][+*]$/.test(group)) options = [value];
      else if (/^[A-Za-z0-9_|-]+$/.test(group)) options = group.split('|');
      else throw new Error(`route ${pattern.source}: cannot walk the group (${group})`);
    } else if (m[2] !== undefined) options = [m[2]];
    else {
      assert.doesNotMatch(m[3]!, /[[\]?*+.^$|{}]/, `route ${pattern.source}: unexpected regex syntax`);
      options = [m[3]!];
    }
    paths = paths.flatMap((p) => options.map((o) => p + o));
  }
  return paths;
}

interface Reply {
  readonly status: number;
  readonly body: string;
}

function request(
  port: number,
  agent: http.Agent,
  method: string,
  path: string,
  auth?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const body = method === 'POST' ? '{}' : undefined;
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent,
        headers: {
          ...(auth ? { authorization: `Bearer ${auth}` } : {}),
          ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(20_000, () => req.destroy(new Error(`no answer to ${method} ${path.slice(0, 120)}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs `tasks` with at most `width` in flight. */
async function pool<T>(items: readonly T[], width: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await run(items[next++]!);
    }),
  );
}

describe('attack: every route with malformed path and query values', () => {
  let node: ApiXNode;
  let records: Records;
  let dataDir: string;
  let port: number;
  const logs = new LogCapture();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const credentials: Record<string, string | undefined> = { none: undefined };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'apix-routes-'));
    cpSync(join(await pgliteTemplate(), 'pgdata'), join(dataDir, 'pgdata'), { recursive: true });
    const c = config({ dataDir });
    const log = createLogger('warn', 'test', logs);
    records = await openRecords(c, { clock: systemClock, random: Math.random, log });
    node = await startNode(c, {
      logger: log,
      apiKeys: records.apiKeys,
      channels: records.channels,
      deadLetters: records.deadLetters,
      hooks: records.hooks,
      readiness: records.readiness,
      durable: records.durable,
      durableReplay: records.durableReplay,
    });
    records.attach(node);
    // What `apix serve` adds (src/cli/commands/serve.ts).
    registerSdkBundle(node.httpRouter);
    registerFeedExample(node.httpRouter);
    port = portOf(node);
    credentials.member = await token({ sub: 'mallory', roles: ['member'] });
    credentials.admin = await token({ sub: 'root', roles: ['admin'] });
  });
  after(async () => {
    agent.destroy();
    await node?.close();
    await records?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const failures: string[] = [];
  const check = (what: string, r: Reply, path: string): void => {
    // /readyz may honestly answer 503 when a dependency is slow; nothing else may.
    if (r.status >= 500 && !(path.startsWith('/readyz') && r.status === 503))
      failures.push(`${what} -> ${r.status} ${r.body.slice(0, 200)}`);
    if (r.status >= 400 && r.status < 500 && r.body.startsWith('{')) {
      const code = (JSON.parse(r.body) as { code?: string }).code;
      if (code === undefined || !(code in ERRORS)) failures.push(`${what} -> ${r.status} code ${code}`);
    }
  };

  it('walks every route of the router (each pattern yields a path it matches)', () => {
    const routes = node.httpRouter.list();
    assert.ok(routes.length >= 17, `only ${routes.length} routes`);
    for (const route of routes)
      for (const p of pathsOf(route.pattern, 'x')) assert.match(p, route.pattern, `generated ${p}`);
    // The routes of the issue are among them.
    const all = routes.flatMap((r) => pathsOf(r.pattern, 'x'));
    for (const p of ['/v1/channels/x/history', '/v1/admin/sessions/x/suspend', '/v1/audit'])
      assert.ok(all.includes(p), p);
  });

  it('malformed path segments: no 5xx on any route, with any credential', async () => {
    const jobs: [string, string, string][] = [];
    for (const route of node.httpRouter.list())
      for (const segment of BAD_SEGMENTS)
        for (const path of pathsOf(route.pattern, segment))
          for (const who of Object.keys(credentials)) jobs.push([route.method, path, who]);
    await pool(jobs, 8, async ([method, path, who]) => {
      const r = await request(port, agent, method, path, credentials[who]);
      check(`${method} ${path.slice(0, 120)} (${who})`, r, path);
    });
    assert.deepEqual(failures, []);
  });

  it('malformed query values: no 5xx on any route (the audit read of the issue included)', async () => {
    const jobs: [string, string, string][] = [];
    for (const route of node.httpRouter.list())
      for (const base of pathsOf(route.pattern, 'room:a'))
        for (const key of QUERY_KEYS)
          for (const value of BAD_VALUES)
            for (const who of ['none', 'admin']) jobs.push([route.method, `${base}?${key}=${value}`, who]);
    await pool(jobs, 8, async ([method, path, who]) => {
      const r = await request(port, agent, method, path, credentials[who]);
      check(`${method} ${path.slice(0, 120)} (${who})`, r, path);
    });
    assert.deepEqual(failures, []);
  });

  it('the requests of the issue answer 400 BAD_REQUEST', async () => {
    const cases: [string, string, string | undefined][] = [
      ['GET', '/v1/channels/%ZZ/history', undefined],
      ['GET', '/v1/channels/%ZZ/history', credentials.member],
      ['GET', '/v1/channels/room%C0%AFx/presence', credentials.member],
      ['POST', '/v1/admin/sessions/%E0%A4%A/suspend', credentials.admin],
      ['POST', '/v1/admin/connections/%ff%fe/kick', credentials.admin],
      ['GET', '/v1/audit?since=99999999999999999', credentials.admin],
      ['GET', '/v1/audit?since=8640000000000001', credentials.admin],
      ['GET', '/v1/audit?afterSeq=3000000000', credentials.admin],
    ];
    for (const [method, path, auth] of cases) {
      const r = await request(port, agent, method, path, auth);
      assert.equal(r.status, 400, `${method} ${path}: ${r.body}`);
      assert.equal((JSON.parse(r.body) as { code: string }).code, 'BAD_REQUEST', path);
    }
  });

  it('a request target that is not a URL answers 400, not silence', async () => {
    for (const target of ['//[', '//a:b@', 'http://[::']) {
      const r = await rawHttp(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(r.status, 400, `${target}: ${r.head}`);
    }
  });

  it('nothing was logged as an error', () => {
    const errors = logs.text
      .split('\n')
      .filter((l) => l.includes('"level":50') || l.includes('"level":60'))
      .map((l) => l.slice(0, 300));
    assert.deepEqual(errors, []);
  });
});

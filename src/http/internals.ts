/**
 * `GET /v1/admin/internals` (role `admin`): what a soak watches on a node — memory (after a full GC with
 * `?gc=1`, when the process runs with `--expose-gc`), open handles, the gateway's counters, and the size
 * of every Map, Set and array held by the node's components (gateway, hub, router, engines, rate limiter,
 * operator tools, records...), found by walking their properties a few levels deep. Sizes only: no key,
 * no value, nothing of any organization is returned. Forced collections are at most one a second.
 */
import { EventEmitter } from 'node:events';
import type { Authenticator } from '../auth/authenticator.ts';
import type { HookBus } from '../hooks.ts';
import { ApiXError } from '@apix/protocol';
import { authenticateRequest } from './api.ts';
import { sendJson } from './router.ts';
import type { HttpRouter } from './router.ts';

/** The objects whose collections are reported, by name (more can be added after the node is built). */
export class Internals {
  private readonly roots = new Map<string, unknown>();
  add(name: string, root: unknown): this {
    this.roots.set(name, root);
    return this;
  }

  /** `path -> size` of every Map, Set and array reachable within `maxDepth` property steps of a root. */
  sizes(maxDepth = 4): Record<string, number> {
    const out: Record<string, number> = {};
    const seen = new Set<object>();
    for (const [name, root] of this.roots) walk(root, name, 0, maxDepth, out, seen);
    return out;
  }
}

/** Properties never followed: loggers, clocks, database clients (proxies) and other process-wide things. */
const SKIPPED = new Set([
  'log',
  'logger',
  'clock',
  'prisma',
  'db',
  'random',
  'metrics',
  'registry',
  'server',
]);

function walk(
  value: unknown,
  path: string,
  depth: number,
  maxDepth: number,
  out: Record<string, number>,
  seen: Set<object>,
): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (value instanceof Map || value instanceof Set) {
    out[path] = value.size;
    return;
  }
  if (Array.isArray(value)) {
    out[path] = value.length;
    return;
  }
  if (depth >= maxDepth) return;
  if (value instanceof EventEmitter || ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return;
  if (value instanceof Promise || value instanceof WeakMap || value instanceof WeakSet) return;
  let keys: string[];
  try {
    keys = Object.keys(value);
  } catch {
    return;
  }
  if (keys.length > 200) return;
  for (const k of keys) {
    if (SKIPPED.has(k)) continue;
    let child: unknown;
    try {
      child = (value as Record<string, unknown>)[k];
    } catch {
      continue;
    }
    walk(child, `${path}.${k}`, depth + 1, maxDepth, out, seen);
  }
}

export interface InternalsDeps {
  readonly nodeId: string;
  readonly authenticator: Authenticator;
  readonly hooks: HookBus;
  readonly internals: Internals;
  /** The gateway's own counters (connections, sessions, away sessions, subscriptions, in flight...). */
  readonly counters: () => Record<string, number>;
}

export function registerInternals(http: HttpRouter, deps: InternalsDeps): void {
  let lastGc = 0;
  http.add('GET', /^\/v1\/admin\/internals\/?$/, async ({ req, res }) => {
    const principal = await authenticateRequest(deps, req);
    if (!principal.roles.includes('admin'))
      throw new ApiXError('FORBIDDEN', 'the admin API needs a token with role "admin"');
    const gc = (globalThis as { gc?: () => void }).gc;
    const wantGc = new URL(req.url ?? '/', 'http://x').searchParams.get('gc') === '1';
    let collected = false;
    if (wantGc && gc && Date.now() - lastGc >= 1000) {
      lastGc = Date.now();
      gc();
      collected = true;
    }
    const mem = process.memoryUsage();
    const resources: Record<string, number> = {};
    const active = process.getActiveResourcesInfo();
    for (const r of active) resources[r] = (resources[r] ?? 0) + 1;
    res.setHeader('Cache-Control', 'no-store');
    sendJson(res, 200, {
      nodeId: deps.nodeId,
      at: Date.now(),
      gc: collected,
      memory: {
        heapUsed: mem.heapUsed,
        heapTotal: mem.heapTotal,
        rss: mem.rss,
        external: mem.external,
        arrayBuffers: mem.arrayBuffers,
      },
      handles: active.length,
      resources,
      counters: deps.counters(),
      sizes: deps.internals.sizes(),
    });
  });
}

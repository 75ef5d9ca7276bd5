/**
 * The HTTP API's plumbing: a small route table, JSON bodies with a size limit, JSON errors from the
 * error registry, CORS from APIX_ALLOWED_ORIGINS and the usual security headers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiXError, isApiXError } from '@apix/protocol';
import { setSecurityHeaders } from '../security-headers.ts';

export interface HttpContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly params: readonly string[];
}

export type HttpHandler = (ctx: HttpContext) => Promise<void> | void;

interface Route {
  readonly method: string;
  readonly pattern: RegExp;
  readonly handler: HttpHandler;
}

export class HttpRouter {
  private readonly routes: Route[] = [];
  constructor(private readonly allowedOrigins: readonly string[] | undefined) {}

  add(method: string, pattern: RegExp, handler: HttpHandler): this {
    this.routes.push({ method, pattern, handler });
    return this;
  }

  /** The registered routes (method and path pattern), in matching order. */
  list(): { readonly method: string; readonly pattern: RegExp }[] {
    return this.routes.map(({ method, pattern }) => ({ method, pattern }));
  }

  async handle(req: IncomingMessage, res: ServerResponse, onError: (err: unknown) => void): Promise<void> {
    setSecurityHeaders(res);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      sendError(res, new ApiXError('BAD_REQUEST', 'malformed request target'));
      return;
    }
    this.cors(req, res);
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.pattern.exec(url.pathname);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== req.method && !(route.method === 'GET' && req.method === 'HEAD')) continue;
      try {
        await route.handler({ req, res, url, params: decodeParams(m) });
      } catch (err) {
        if (!isApiXError(err)) onError(err);
        sendError(res, isApiXError(err) ? err : new ApiXError('INTERNAL', 'internal error'));
      }
      return;
    }
    if (pathMatched) sendJson(res, 405, { code: 'BAD_REQUEST', message: `method ${req.method} not allowed` });
    else sendError(res, new ApiXError('NOT_FOUND', `no route for ${url.pathname}`));
  }

  private cors(req: IncomingMessage, res: ServerResponse): void {
    const origin = req.headers.origin;
    if (typeof origin !== 'string') return;
    const allowed = this.allowedOrigins;
    if (allowed && !allowed.includes(origin) && !allowed.includes('*')) return;
    res.setHeader('Access-Control-Allow-Origin', allowed ? origin : '*');
    res.setHeader('Vary', 'Origin');
    res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
    res.setHeader(
      'Access-Control-Allow-Headers',
      'Authorization, Content-Type, X-Apix-Session-Token, Last-Event-ID',
    );
    res.setHeader('Access-Control-Max-Age', '600');
  }
}

/** The captured path segments, percent-decoded; a malformed escape (`%ZZ`, bad UTF-8) is the client's error. */
function decodeParams(m: RegExpExecArray): string[] {
  return m.slice(1).map((p) => {
    if (p === undefined) return '';
    try {
      return decodeURIComponent(p);
    } catch {
      throw new ApiXError('BAD_REQUEST', 'malformed percent-encoding in the path');
    }
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: ApiXError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  if (err.retryAfterMs !== undefined) res.setHeader('Retry-After', Math.ceil(err.retryAfterMs / 1000));
  sendJson(res, err.httpStatus, {
    code: err.code,
    message: err.message,
    ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}),
  });
}

/** Reads a body of at most `limit` bytes as text: PAYLOAD_TOO_LARGE as soon as it is declared or read over. */
export async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new ApiXError('PAYLOAD_TOO_LARGE', `body is over ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new ApiXError('PAYLOAD_TOO_LARGE', `body is over ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a JSON object body of at most `limit` bytes. */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = req.headers['content-type'];
  if (type !== undefined && !type.includes('json'))
    throw new ApiXError('BAD_REQUEST', 'Content-Type must be application/json');
  const text = await readBody(req, limit);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiXError('BAD_REQUEST', 'body is not valid JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new ApiXError('BAD_REQUEST', 'body must be a JSON object');
  return body;
}

export function bearerToken(req: IncomingMessage): string {
  const h = req.headers.authorization;
  if (typeof h !== 'string' || !/^Bearer\s+/i.test(h))
    throw new ApiXError('UNAUTHORIZED', 'Authorization: Bearer <API key or token> is required');
  return h.replace(/^Bearer\s+/i, '').trim();
}

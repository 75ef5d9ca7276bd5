/**
 * The security headers of every HTTP response the node writes (docs/security.md, "Browser pages"): the
 * API's answers (src/http/router.ts), the refused WebSocket upgrades (src/transport/websocket/upgrade.ts), a 404 for
 * an upgrade on another path and the answers to requests Node's parser refused (src/node.ts, `clientError`).
 * One set, in one place, so that no path forgets one.
 */
import { STATUS_CODES } from 'node:http';
import type { ServerResponse } from 'node:http';

export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Resource-Policy': 'same-origin',
});

/** Sets the security headers on a response the HTTP server writes. */
export function setSecurityHeaders(res: ServerResponse): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
}

/**
 * The text of a complete HTTP/1.1 answer written on a raw socket (an upgrade refused before `ws` takes
 * it, or a request the parser refused), with `Connection: close` (which ends the body: the socket is
 * closed after it), the security headers and, when there is one, a JSON body.
 */
export function rawHttpResponse(
  status: number,
  options: { readonly headers?: Readonly<Record<string, string | number>>; readonly json?: string } = {},
): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\n`;
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) head += `${name}: ${value}\r\n`;
  for (const [name, value] of Object.entries(options.headers ?? {})) head += `${name}: ${value}\r\n`;
  if (options.json === undefined) return `${head}\r\n`;
  return `${head}Content-Type: application/json; charset=utf-8\r\n\r\n${options.json}`;
}

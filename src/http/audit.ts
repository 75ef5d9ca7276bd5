/**
 * `GET /v1/audit?since=&type=&limit=`: an organization's audit trail, for its admins only (role
 * `admin` on a JWT, or an API key with the `audit:read` scope), never another organization's.
 */
import type { PrismaClient } from '../generated/prisma/client.ts';
import { ApiXError } from '@apix/protocol';
import { parseAuditQuery, queryAudit } from '../audit/index.ts';
import type { Authenticator } from '../auth/authenticator.ts';
import type { HookBus } from '../hooks.ts';
import { authenticateRequest, peerOfRequest } from './api.ts';
import { sendJson } from './router.ts';
import type { HttpRouter } from './router.ts';

export function registerAuditRoutes(
  http: HttpRouter,
  deps: { prisma: PrismaClient; authenticator: Authenticator; hooks: HookBus },
): void {
  http.add('GET', /^\/v1\/audit\/?$/, async ({ req, res, url }) => {
    const principal = await authenticateRequest(deps, req);
    const allowed = principal.roles.includes('admin') || principal.scopes.includes('audit:read');
    if (!allowed) {
      deps.hooks.emit('onDeny', {
        principal,
        peer: peerOfRequest(req),
        action: 'history',
        channel: 'audit',
        reason: 'audit needs role admin',
      });
      throw new ApiXError('FORBIDDEN', 'reading the audit trail needs the admin role');
    }
    const q = parseAuditQuery(principal.orgId, url.searchParams);
    if (!q.ok) throw new ApiXError('BAD_REQUEST', q.message);
    sendJson(res, 200, await queryAudit(deps.prisma, q.query));
  });
}

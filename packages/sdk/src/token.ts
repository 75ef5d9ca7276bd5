/** Tokens: a fixed string or a provider called before each connect and again before expiry. */

/** Returns a fresh token (e.g. from your auth server). Called before each connect and before expiry. */
export type TokenProvider = () => string | Promise<string>;

/**
 * The `exp` claim of a JWT, in ms since epoch, read WITHOUT verifying the signature (the server verifies;
 * the client only needs to know when to refresh). Undefined for API keys and tokens without `exp`.
 */
export function decodeJwtExpiryMs(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(base64UrlDecode(parts[1]));
    if (typeof claims !== 'object' || claims === null) return undefined;
    const exp = (claims as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * When to refresh a token expiring at `expiresAtMs`: `marginMs` before expiry, or half-way through the
 * remaining lifetime when that is later (a token shorter-lived than the margin would otherwise be refreshed
 * in a tight loop).
 */
export function tokenRefreshDelayMs(expiresAtMs: number, nowMs: number, marginMs: number): number {
  const remaining = expiresAtMs - nowMs;
  if (remaining <= 0) return 0;
  return Math.max(remaining - marginMs, remaining / 2);
}

function base64UrlDecode(segment: string): string {
  const b64 = segment.replace(/-/g, '+').replace(/_/g, '/');
  const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
  // atob and TextDecoder exist in browsers and in Node >= 16: no Buffer, so the bundle stays neutral.
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

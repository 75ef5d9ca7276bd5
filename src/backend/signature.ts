/**
 * The signature of the requests APIX sends to a platform's backend (webhooks, proxy calls), PROTOCOL-1.1
 * section 13: header `X-Apix-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
 * Receivers recompute it over the raw body and refuse a `t` older than {@link SIGNATURE_TOLERANCE_S}.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'X-Apix-Signature';
/** How old (or how far in the future) a signature's `t` may be, in seconds: 5 minutes. */
export const SIGNATURE_TOLERANCE_S = 300;

/** The header value for `body` signed with `secret` at `nowMs`. */
export function signatureHeader(secret: string, body: string, nowMs: number): string {
  const t = Math.floor(nowMs / 1000);
  return `t=${t},v1=${hmacHex(secret, `${t}.${body}`)}`;
}

function hmacHex(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text).digest('hex');
}

/** Why a signature was refused, or undefined when it is good. */
export function verifySignature(
  secret: string,
  body: string,
  header: string | undefined,
  nowMs: number,
  toleranceS = SIGNATURE_TOLERANCE_S,
): string | undefined {
  if (header === undefined) return 'no signature header';
  const parts = new Map<string, string[]>();
  for (const item of header.split(',')) {
    const i = item.indexOf('=');
    if (i <= 0) continue;
    const k = item.slice(0, i).trim();
    const list = parts.get(k) ?? [];
    list.push(item.slice(i + 1).trim());
    parts.set(k, list);
  }
  const t = Number(parts.get('t')?.[0]);
  if (!Number.isInteger(t)) return 'no timestamp in the signature';
  if (Math.abs(Math.floor(nowMs / 1000) - t) > toleranceS) return 'signature timestamp out of tolerance';
  const expected = Buffer.from(hmacHex(secret, `${t}.${body}`), 'hex');
  // Several v1 values are allowed (a rotating secret); one must match.
  for (const v of parts.get('v1') ?? []) {
    const given = Buffer.from(v, 'hex');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return undefined;
  }
  return 'signature mismatch';
}

/** Values headed for PostgreSQL jsonb and text columns. */
import type { Prisma } from '../generated/prisma/client.ts';

/** PostgreSQL text and jsonb reject NUL; it becomes U+FFFD. */
export function pgSafeText(s: string): string {
  return s.includes('\u0000') ? s.replaceAll('\u0000', '\uFFFD') : s;
}

/** A JSON-safe copy: drops undefined members, turns NUL into U+FFFD, non-JSON values into what JSON makes. */
export function toJsonValue(value: unknown): Prisma.InputJsonValue {
  const text = JSON.stringify(value ?? null, (_k, v: unknown) => (typeof v === 'string' ? pgSafeText(v) : v));
  return JSON.parse(text ?? 'null') as Prisma.InputJsonValue;
}

/** Values headed for PostgreSQL jsonb and text columns. */
import type { Prisma } from '../generated/prisma/client.ts';

/**
 * PostgreSQL text and jsonb reject NUL, and a lone UTF-16 surrogate cannot be stored as UTF-8 (it would be
 * stored as U+FFFD, unlike what was hashed into the audit chain): both become U+FFFD here, before hashing.
 */
export function pgSafeText(s: string): string {
  const str = s as unknown as { isWellFormed(): boolean; toWellFormed(): string };
  const wellFormed = str.isWellFormed() ? s : str.toWellFormed();
  return wellFormed.includes('\u0000') ? wellFormed.replaceAll('\u0000', '\uFFFD') : wellFormed;
}

/** A JSON-safe copy: drops undefined members, turns NUL into U+FFFD, non-JSON values into what JSON makes. */
export function toJsonValue(value: unknown): Prisma.InputJsonValue {
  const text = JSON.stringify(value ?? null, (_k, v: unknown) => (typeof v === 'string' ? pgSafeText(v) : v));
  return JSON.parse(text ?? 'null') as Prisma.InputJsonValue;
}

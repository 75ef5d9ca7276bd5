/**
 * The registry of internal error codes: errors thrown inside the node (bad settings given to a component,
 * a Redis or database dependency that fails, a component used after it closed) carry a stable `code`, as
 * the wire errors of src/protocol/errors.ts do, so that callers decide by code instead of by message.
 * They never reach a client as such: at the edge they become a wire error (INTERNAL or UNAVAILABLE).
 * Listed in docs/errors.md (a test keeps the two in sync).
 */

export const INTERNAL_ERRORS = {
  APIX_ERR_INVALID_ARGUMENT: 'A component was given a value outside its contract (a bug or a bad setting).',
  APIX_ERR_INVALID_SETTING: 'A setting or CLI argument that the config schema cannot check alone is invalid.',
  APIX_ERR_KEYRING: 'The at-rest keyring is invalid (a key version listed twice, a key not 32 bytes, ...).',
  APIX_ERR_CLOSED: 'A component (broker, database transaction) was used after it was closed.',
  APIX_ERR_TIMEOUT: 'A dependency did not answer in time; the operation may still have been applied.',
  APIX_ERR_REDIS_URL: 'REDIS_URL cannot be used (no hosts, bad host, database number, cluster mix).',
  APIX_ERR_REDIS_UNAVAILABLE: 'A Redis connection is not ready, or could not be made.',
  APIX_ERR_REDIS_SCRIPT: 'A Lua script is missing, misnamed, or called with the wrong number of keys.',
  APIX_ERR_REDIS_KEY: 'A Redis key or key prefix does not follow the key layout (src/redis/keys.ts).',
  APIX_ERR_DB_UNAVAILABLE: 'The database is unreachable, or the embedded database stopped.',
  APIX_ERR_WEBHOOK_DESTINATION:
    'A webhook destination resolves to a private or loopback address (SSRF guard; APIX_WEBHOOK_ALLOW_PRIVATE).',
} as const satisfies Record<`APIX_ERR_${string}`, string>;

export type InternalErrorCode = keyof typeof INTERNAL_ERRORS;

/** An error of the node itself, with a code of {@link INTERNAL_ERRORS}. */
export class InternalError extends Error {
  constructor(
    readonly code: InternalErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Whether `err` is an InternalError (of `code`, when given). */
export function isInternalError(err: unknown, code?: InternalErrorCode): err is InternalError {
  return err instanceof InternalError && (code === undefined || err.code === code);
}

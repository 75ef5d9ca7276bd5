/**
 * `@apix/protocol`: everything the server and the SDK share. Imports nothing outside this package but zod.
 * Each module is also its own entry (`@apix/protocol/errors`, ...), so the SDK bundle takes only what it uses.
 */
export * from './constants.ts';
export * from './errors.ts';
export * from './channels.ts';
export * from './events.ts';
export * from './schemas.ts';
export * from './event-id.ts';
export * from './e2e.ts';
export * from './json-bounds.ts';
export * from './clock.ts';

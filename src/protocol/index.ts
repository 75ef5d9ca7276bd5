/** The protocol module: everything the server and the SDK share. Imports nothing outside this folder. */
export * from './constants.ts';
export * from './errors.ts';
export * from './channels.ts';
export * from './events.ts';
export * from './schemas.ts';
export * from './event-id.ts';
export * from './e2e.ts';
export * from './json-bounds.ts';

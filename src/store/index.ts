/** Durable records: the database factory, migrations and the repositories the gateway writes through. */
export * from './database.ts';
export * from './migrate.ts';
export * from './records.ts';
export * from './record-hooks.ts';
export * from './api-keys.ts';
export * from './channel-records.ts';
export * from './connection-records.ts';
export * from './event-records.ts';
export * from './organizations.ts';
export * from './prisma-channel-registry.ts';
export * from './prisma-dead-letter-store.ts';
export type { StoreLogger } from './log.ts';

/** The audit trail: logger (batched, spill-to-file), hook wiring, chain verification and queries. */
export * from './audit-logger.ts';
export * from './audit-hooks.ts';
export * from './entry.ts';
export * from './hash-chain.ts';
export * from './verify.ts';
export * from './query.ts';
export * from './denial-aggregator.ts';

/** The logger the store and the audit trail write to: a pino logger or anything with the same calls. */
import type { Logger } from 'pino';
import { pino } from 'pino';

export type StoreLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

export const silentLogger: StoreLogger = pino({ level: 'silent' });

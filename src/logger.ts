import { type Logger, pino } from 'pino';

export type { Logger };

/** The root logger; everything else logs through child loggers of it. Auth material is always redacted. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'headers.authorization',
          'token',
          '*.token',
          'apiToken',
          'env',
          '*.env',
          'headers',
          '*.headers',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

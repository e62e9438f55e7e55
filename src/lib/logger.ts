import { destination, pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Paths are redacted by configuration so that a secret placed in a log object by mistake
 * never reaches the output.
 */
export const REDACTED_PATHS = [
  'secret',
  'token',
  'password',
  'authorization',
  '*.secret',
  '*.token',
  '*.password',
  '*.authorization',
  'headers.authorization',
  'headers["x-hub-signature-256"]',
  'headers["x-gitlab-token"]',
  'headers["webhook-signature"]',
  'req.headers.authorization',
  'req.headers["x-gitlab-token"]',
  'req.headers["x-hub-signature-256"]',
  'req.headers["webhook-signature"]',
];

export interface LoggerOptions {
  level?: string;
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? 'info';
  const settings = {
    level,
    base: { service: 'pushgate' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  // Asynchronous stdout: a synchronous write per line cost a syscall on the webhook path.
  // pino flushes what is pending when the process exits.
  return pino(settings, options.destination ?? destination({ dest: 1, sync: false }));
}

/** A logger that drops everything, for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

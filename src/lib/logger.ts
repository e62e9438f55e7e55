import { destination, pino, type Logger, type DestinationStream, type LevelWithSilent } from 'pino';
import { ConfigError } from './errors.js';
import { isoTime as formatIsoTime } from './iso-time.js';
import { CENSOR, redactSecrets, SECRET_KEYS } from './redact-secrets.js';

export type { Logger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  destination?: DestinationStream;
}

const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * `LOG_LEVEL`: unset or empty is info; a name pino does not know is invalid configuration
 * (exit 2) naming the variable and the names it takes, not pino's own error at startup.
 */
export function logLevelFromEnv(raw: string | undefined): LevelWithSilent {
  if (raw === undefined || raw === '') return 'info';
  const level = LOG_LEVELS.find((name) => name === raw.toLowerCase());
  if (level === undefined)
    throw new ConfigError(`LOG_LEVEL="${raw}" is not a log level: use one of ${LOG_LEVELS.join(', ')}`);
  return level;
}

/** Set only while writeAsOf writes a line held back: the time that line was logged at. */
let heldAtMs: number | undefined;

/** pino's isoTime, but for a line held back (writeAsOf) the time it was logged at. */
function isoTime(): string {
  return `,"time":"${formatIsoTime(heldAtMs ?? Date.now())}"`;
}

/**
 * Writes now a line that was held back since `atMs` (the steps of a re-sync, until it is
 * known whether it changed anything: see ResyncLog), stamped with the time it was logged at:
 * a step's time tells how long it took, not when the run ended.
 */
export function writeAsOf(atMs: number, write: () => void): void {
  heldAtMs = atMs;
  try {
    write();
  } finally {
    heldAtMs = undefined;
  }
}

/** One buffer for every logger of the process, so lines keep their order and one exit hook flushes. */
let sharedStdout: DestinationStream | undefined;

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? logLevelFromEnv(process.env.LOG_LEVEL);
  const settings = {
    level,
    base: { service: 'pushgate' },
    timestamp: isoTime,
    // A secret placed in a log object by mistake never reaches the output: log objects are
    // scrubbed at any depth; a child logger's bindings (pino formats them apart) by key.
    // pino's wildcard paths (`*.token`) would cost about 10 µs a line.
    redact: { paths: [...SECRET_KEYS], censor: CENSOR },
    formatters: {
      level: (label: string) => ({ level: label }),
      log: (object: Record<string, unknown>) => redactSecrets(object),
    },
  };
  return pino(settings, options.destination ?? (sharedStdout ??= stdoutPerTurn()));
}

/** Lines one turn may buffer before they are written without waiting for the turn's end. */
const TURN_BUFFER_BYTES = 8 * 1024;

/**
 * stdout, written once per event-loop turn: under load the lines of many requests share one
 * write syscall, and no line waits past the turn that logged it. Measured on the webhook
 * path, this costs half of what a line cost with an asynchronous destination (a thread-pool
 * write per line or two) or a synchronous write per line. A crash still writes what is
 * buffered ('exit' runs); only SIGKILL loses it, at most one turn of lines.
 */
function stdoutPerTurn(): DestinationStream {
  const stream = destination({ dest: 1, sync: true, minLength: TURN_BUFFER_BYTES });
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    stream.flush();
  };
  process.once('exit', () => stream.flushSync());
  return {
    write(line: string): void {
      stream.write(line);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
  };
}

/** A logger that drops everything, for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

import type { Bindings, ChildLoggerOptions } from 'pino';
import { writeAsOf, type Logger } from '../lib/logger.js';

/**
 * A re-sync still running after this long is news whatever it changes (a health wait that
 * does not end, a slow API server): what was held goes out, and what follows as it comes.
 */
export const RESYNC_HOLD_MS = 30_000;

interface HeldLine {
  logger: Logger;
  /** As given to `info`: (details, message) or (message). */
  args: unknown[];
  atMs: number;
}

/**
 * The log of a re-sync run (trigger `reconcile`). A run that changes nothing says so in one
 * info line (`re-sync: nothing changed`), as Flux logs one line per reconciliation: at 300
 * environments re-synced every 10 minutes, six step lines each would be 1,800 lines of nothing
 * every 10 minutes. Until the run is known to change nothing, its info lines are held back;
 * they go out at info, as they are and with the time each was logged at, as soon as it turns
 * out to be news: objects it creates, changes or prunes (keepSteps), a warning or an error,
 * any other end than success, a run longer than RESYNC_HOLD_MS. Otherwise they go out at debug before the summary line.
 *
 * `logger`, and every child made from it, hold their info lines here; their other levels
 * pass through, a warning or an error after the held lines.
 */
export class ResyncLog {
  readonly logger: Logger;
  private held: HeldLine[] | undefined = [];
  private readonly holdTimer: NodeJS.Timeout;

  constructor(
    private readonly base: Logger,
    holdMs = RESYNC_HOLD_MS,
  ) {
    this.logger = this.holding(base);
    this.holdTimer = setTimeout(() => this.keepSteps(), holdMs);
    this.holdTimer.unref();
  }

  /** The run is news: what was held goes out at info, as it is, and what follows as it comes. */
  keepSteps(): void {
    this.release('info');
  }

  /**
   * The run succeeded without changing anything: its steps go out at debug and `details` in
   * one info line. False when its steps went out at info already (a warning came): then the
   * run's own last line says how it ended.
   */
  nothingChanged(details: Record<string, unknown>): boolean {
    if (!this.held) return false;
    this.release('debug');
    this.base.info(details, 're-sync: nothing changed');
    return true;
  }

  private release(level: 'info' | 'debug'): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    clearTimeout(this.holdTimer);
    for (const line of held)
      writeAsOf(line.atMs, () => {
        Reflect.apply(line.logger[level], line.logger, line.args);
      });
  }

  private holding(target: Logger): Logger {
    return new Proxy(target, {
      get: (logger, property) => {
        switch (property) {
          case 'info':
            return (...args: unknown[]) => {
              // Neither at info nor at debug would it be written: nothing to hold.
              if (this.held && !logger.isLevelEnabled('info')) return;
              if (this.held) this.held.push({ logger, args, atMs: Date.now() });
              else Reflect.apply(logger.info, logger, args);
            };
          case 'warn':
          case 'error':
          case 'fatal':
            return (...args: unknown[]) => {
              this.keepSteps();
              Reflect.apply(logger[property], logger, args);
            };
          case 'child':
            return (bindings: Bindings, options?: ChildLoggerOptions<never>) =>
              this.holding(logger.child(bindings, options));
          default: {
            const value: unknown = Reflect.get(logger, property, logger);
            return typeof value === 'function'
              ? (value as (...args: unknown[]) => unknown).bind(logger)
              : value;
          }
        }
      },
    });
  }
}

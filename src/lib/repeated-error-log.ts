import { errorMessage } from './errors.js';
import type { Logger } from './logger.js';

/** While an error repeats, at most one line of it this often. */
export const REPEATED_ERROR_INTERVAL_MS = 30_000;
/** Messages tracked at once (the most recently logged): an outage gives one or two. */
const MESSAGES_TRACKED = 20;

/**
 * Errors that repeat for as long as something is away: a worker's Redis connections retry
 * every 2 s at most, two of them, and BullMQ reports each failure, which would be a line a
 * second per worker for the whole outage and bury the rest of the log. Each message is logged
 * the first time at once, then at most once per interval with how many times it came since its
 * last line; `recovered()` says in one line how many errors the outage gave, and starts over.
 */
export class RepeatedErrorLog {
  private readonly messages = new Map<string, { lastLineAt: number; sinceLine: number }>();
  private sinceRecovery = 0;

  constructor(
    private readonly logger: Logger,
    private readonly message: string,
    private readonly intervalMs = REPEATED_ERROR_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  readonly report = (error: unknown): void => {
    const err = errorMessage(error);
    const now = this.now();
    this.sinceRecovery++;
    const seen = this.messages.get(err);
    if (seen && now - seen.lastLineAt < this.intervalMs) {
      seen.sinceLine++;
      return;
    }
    const repeated = seen?.sinceLine ?? 0;
    this.logger.error({ err, ...(repeated > 0 ? { repeatedSinceLastLine: repeated } : {}) }, this.message);
    // The oldest goes: errors naming a job (a lost lock) come once each and must not leave
    // the next outage's connection errors untracked.
    if (!seen && this.messages.size >= MESSAGES_TRACKED)
      this.messages.delete(this.messages.keys().next().value!);
    this.messages.delete(err);
    this.messages.set(err, { lastLineAt: now, sinceLine: 0 });
  };

  /** What was failing works again: one line for the errors since, if any. */
  recovered(what: string): void {
    if (this.sinceRecovery === 0) return;
    this.logger.info({ errors: this.sinceRecovery }, what);
    this.sinceRecovery = 0;
    this.messages.clear();
  }
}

import type { Logger } from '../lib/logger.js';
import type { ThrottledWait } from './throttle-retry.js';

/**
 * A throttled deploy logs a line at least this often while the throttling goes on. A line per
 * wait would be too many: the dry-run keeps 32 requests in flight, each waiting about a
 * second per retry under API Priority and Fairness, so a throttled set of 5,000 objects
 * would log dozens of lines a second, thousands in all, and bury the rest of the job's log.
 */
export const THROTTLE_LOG_INTERVAL_MS = 10_000;

const MESSAGE = 'API server throttled a request; retrying after its Retry-After';

/**
 * The throttled waits of one deploy, on its log (the logger's jobId and environment): the
 * first at once, so an operator watching a slow deploy sees why it is slow; then at most one
 * line per interval, counting the waits since the line before; and at the end (`flush`) how
 * many came after the last line. Each line names the wait that prompted it.
 */
export class ThrottleLog {
  private sinceLine = 0;
  private total = 0;
  private lastLineAt = -Infinity;

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = THROTTLE_LOG_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  readonly onThrottled = (wait: ThrottledWait): void => {
    this.sinceLine++;
    this.total++;
    const now = this.now();
    if (now - this.lastLineAt < this.intervalMs) return;
    this.lastLineAt = now;
    const { method, path, status, waitMs, retry, maxRetries } = wait;
    this.logger.warn(
      {
        method,
        path,
        status,
        waitMs,
        retry,
        maxRetries,
        throttled: this.sinceLine,
        throttledTotal: this.total,
      },
      MESSAGE,
    );
    this.sinceLine = 0;
  };

  /** The deploy is over: the waits since the last line, if any, in one more. */
  flush(): void {
    if (this.sinceLine === 0) return;
    this.logger.warn(
      { throttled: this.sinceLine, throttledTotal: this.total },
      'API server throttled more requests of this deploy since the last line',
    );
    this.sinceLine = 0;
  }
}

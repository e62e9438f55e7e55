import { describe, expect, it } from 'vitest';
import { ThrottleLog } from '../../../src/kube/throttle-log.js';
import type { ThrottledWait } from '../../../src/kube/throttle-retry.js';
import { createLogger } from '../../../src/lib/logger.js';

function capture(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'info',
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger: logger.child({ jobId: 'job-1', environment: 'production' }), lines };
}

const wait = (retry: number, path = '/api/v1/namespaces/apps/configmaps/web'): ThrottledWait => ({
  method: 'PATCH',
  path,
  status: 429,
  waitMs: 1_000,
  retry,
  maxRetries: 10,
});

describe('ThrottleLog', () => {
  it('logs the first throttled wait of a deploy at once, as a warning naming the job and the request', () => {
    const { logger, lines } = capture();
    const log = new ThrottleLog(logger, 10_000, () => 0);

    log.onThrottled(wait(1));

    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'warn',
      jobId: 'job-1',
      environment: 'production',
      method: 'PATCH',
      path: '/api/v1/namespaces/apps/configmaps/web',
      status: 429,
      waitMs: 1_000,
      retry: 1,
      maxRetries: 10,
      throttled: 1,
      throttledTotal: 1,
      msg: 'API server throttled a request; retrying after its Retry-After',
    });
  });

  it('then at most one line per interval, counting the waits since the line before', () => {
    const { logger, lines } = capture();
    let now = 0;
    const log = new ThrottleLog(logger, 10_000, () => now);

    log.onThrottled(wait(1));
    for (let second = 1; second < 10; second++) {
      now = second * 1_000;
      for (let request = 0; request < 32; request++) log.onThrottled(wait(second));
    }
    expect(lines).toHaveLength(1);
    now = 10_000;
    log.onThrottled(wait(10, '/api/v1/namespaces/apps/configmaps/other'));

    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({
      path: '/api/v1/namespaces/apps/configmaps/other',
      retry: 10,
      throttled: 9 * 32 + 1,
      throttledTotal: 9 * 32 + 2,
    });
  });

  it('says at the end how many waits came after its last line, and nothing when none did', () => {
    const { logger, lines } = capture();
    let now = 0;
    const log = new ThrottleLog(logger, 10_000, () => now);
    log.onThrottled(wait(1));
    log.flush();
    expect(lines).toHaveLength(1);

    now = 1_000;
    log.onThrottled(wait(2));
    log.onThrottled(wait(1));
    log.flush();
    log.flush();

    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({
      level: 'warn',
      jobId: 'job-1',
      environment: 'production',
      throttled: 2,
      throttledTotal: 3,
    });
  });
});

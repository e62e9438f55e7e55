import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/lib/logger.js';
import { RepeatedErrorLog } from '../../../src/lib/repeated-error-log.js';

function capture(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'info',
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger, lines };
}

const refused = new Error('connect ECONNREFUSED 127.0.0.1:6379');

describe('RepeatedErrorLog', () => {
  it('logs an error at once, then its repeats at most once per interval with how many came since', () => {
    const { logger, lines } = capture();
    let now = 0;
    const log = new RepeatedErrorLog(logger, 'worker error', 30_000, () => now);

    // A retry every second on two connections, for 65 s.
    for (; now <= 65_000; now += 1_000) {
      log.report(refused);
      log.report(refused);
    }

    expect(lines.map((line) => [line.level, line.msg, line.err, line.repeatedSinceLastLine])).toEqual([
      ['error', 'worker error', refused.message, undefined],
      ['error', 'worker error', refused.message, 59],
      ['error', 'worker error', refused.message, 59],
    ]);
  });

  it('logs a different error at once, even while another one repeats', () => {
    const { logger, lines } = capture();
    const log = new RepeatedErrorLog(logger, 'worker error', 30_000, () => 0);

    log.report(refused);
    log.report(refused);
    log.report(new Error('NOSCRIPT No matching script'));

    expect(lines.map((line) => line.err)).toEqual([refused.message, 'NOSCRIPT No matching script']);
  });

  it('keeps limiting an outage after many one-off errors (a lost lock names its job)', () => {
    const { logger, lines } = capture();
    const log = new RepeatedErrorLog(logger, 'worker error', 30_000, () => 0);

    for (let n = 0; n < 25; n++) log.report(new Error(`could not renew lock for job ${n}`));
    for (let n = 0; n < 10; n++) log.report(refused);

    expect(lines.filter((line) => line.err === refused.message)).toHaveLength(1);
  });

  it('says in one line how many errors there were once it recovers, and then logs the next error at once', () => {
    const { logger, lines } = capture();
    const log = new RepeatedErrorLog(logger, 'worker error', 30_000, () => 0);

    log.recovered('Redis answers again');
    expect(lines).toEqual([]);
    for (let n = 0; n < 7; n++) log.report(refused);
    log.recovered('Redis answers again');
    log.report(refused);

    expect(lines.map((line) => [line.level, line.msg, line.errors])).toEqual([
      ['error', 'worker error', undefined],
      ['info', 'Redis answers again', 7],
      ['error', 'worker error', undefined],
    ]);
  });
});

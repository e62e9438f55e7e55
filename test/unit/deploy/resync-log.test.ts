import { describe, expect, it } from 'vitest';
import { ResyncLog } from '../../../src/deploy/resync-log.js';
import { createLogger } from '../../../src/lib/logger.js';
import { until } from '../../helpers/until.js';

type Line = { level: string; msg: string; time: string; jobId?: string };

function capture(): { lines: Line[]; logger: ReturnType<typeof createLogger> } {
  const lines: Line[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Line) },
  });
  return { lines, logger };
}

describe('the log of a re-sync', () => {
  it('shows the steps of a re-sync that runs long at info, held ones with their own time', async () => {
    const { lines, logger } = capture();
    const log = new ResyncLog(logger.child({ jobId: 'resync-1' }), 200);
    log.logger.info('deploy started');
    const before = Date.now();
    log.logger.info('waiting up to 5m for 1 workload to be ready');
    const after = Date.now();
    expect(lines).toEqual([]);

    // Sitting in its health wait: nothing more comes, yet the wait shows.
    await until(() => Promise.resolve(lines.length === 2), 5_000);
    expect(lines.map((line) => [line.level, line.msg, line.jobId])).toEqual([
      ['info', 'deploy started', 'resync-1'],
      ['info', 'waiting up to 5m for 1 workload to be ready', 'resync-1'],
    ]);
    // Its own time, not the time it was released at.
    expect(Date.parse(lines[1]!.time)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(lines[1]!.time)).toBeLessThanOrEqual(after);
    log.logger.info('all workloads ready');
    expect(lines.at(-1)).toMatchObject({ level: 'info', msg: 'all workloads ready' });
    // Its end then says how it went, as any deploy's does.
    expect(log.nothingChanged({ objects: 1 })).toBe(false);
  });

  it('folds a quick re-sync that changed nothing into one info line', () => {
    const { lines, logger } = capture();
    const log = new ResyncLog(logger, 60_000);
    log.logger.info('deploy started');
    log.logger.child({ step: 'apply' }).info('applied: 3 objects');

    expect(log.nothingChanged({ objects: 3 })).toBe(true);
    expect(lines.map((line) => [line.level, line.msg])).toEqual([
      ['debug', 'deploy started'],
      ['debug', 'applied: 3 objects'],
      ['info', 're-sync: nothing changed'],
    ]);
  });
});

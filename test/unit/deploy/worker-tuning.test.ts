import { describe, expect, it } from 'vitest';
import { workerTuningFromEnv } from '../../../workers/deploy.js';

describe('workerTuningFromEnv', () => {
  it('reads the worker knobs, and leaves unset ones to the defaults', () => {
    expect(
      workerTuningFromEnv({ PUSHGATE_WORKER_CONCURRENCY: '8', PUSHGATE_SHUTDOWN_TIMEOUT_MS: '320000' }),
    ).toEqual({ concurrency: 8, lockDurationMs: undefined, shutdownDeadlineMs: 320000 });
  });

  it('refuses a timeout Node’s timers cannot hold (they would fire at once)', () => {
    expect(() => workerTuningFromEnv({ PUSHGATE_SHUTDOWN_TIMEOUT_MS: '3000000000' })).toThrow(
      'PUSHGATE_SHUTDOWN_TIMEOUT_MS="3000000000" must be a positive integer of milliseconds up to 2147483647',
    );
    expect(() => workerTuningFromEnv({ PUSHGATE_JOB_LOCK_MS: '0' })).toThrow(/PUSHGATE_JOB_LOCK_MS="0"/);
  });
});

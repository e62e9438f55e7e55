import { describe, expect, it } from 'vitest';
import { DEFAULT_FETCH_MAX_BYTES } from '../../../src/git/fetch-budget.js';
import { workerTuningFromEnv } from '../../../workers/deploy.js';

describe('workerTuningFromEnv', () => {
  it('reads the worker knobs, and leaves unset ones to the defaults', () => {
    expect(
      workerTuningFromEnv({ PUSHGATE_WORKER_CONCURRENCY: '8', PUSHGATE_SHUTDOWN_TIMEOUT_MS: '320000' }),
    ).toEqual({
      concurrency: 8,
      lockDurationMs: undefined,
      shutdownDeadlineMs: 320000,
      fetchMaxBytes: DEFAULT_FETCH_MAX_BYTES,
    });
  });

  it('reads the git fetch limits', () => {
    expect(
      workerTuningFromEnv({
        PUSHGATE_GIT_FETCH_MAX_BYTES: '268435456',
        PUSHGATE_GIT_FETCH_TIMEOUT_MS: '300000',
      }),
    ).toMatchObject({ fetchMaxBytes: 268435456, fetchTimeoutMs: 300000 });
  });

  it('reads the fsck problems a fetch lets through, and refuses what is not a list of their ids', () => {
    expect(workerTuningFromEnv({ PUSHGATE_GIT_FSCK_IGNORE: 'hasDot, zeroPaddedFilemode' })).toMatchObject({
      fsckIgnore: ['hasDot', 'zeroPaddedFilemode'],
    });
    expect(workerTuningFromEnv({ PUSHGATE_GIT_FSCK_IGNORE: '' })).not.toHaveProperty('fsckIgnore');
    expect(() => workerTuningFromEnv({ PUSHGATE_GIT_FSCK_IGNORE: 'hasDot;rm -rf /' })).toThrow(
      'PUSHGATE_GIT_FSCK_IGNORE="hasDot;rm -rf /" must be git fsck message ids separated by commas, such as hasDot,zeroPaddedFilemode ("hasDot;rm -rf /" is not one)',
    );
    expect(() => workerTuningFromEnv({ PUSHGATE_GIT_FSCK_IGNORE: 'hasDot,,x' })).toThrow(
      /\("" is not one\)$/,
    );
    // fetch.fsck.skipList is git's name for a file of objects to skip: every fetch would fail.
    expect(() => workerTuningFromEnv({ PUSHGATE_GIT_FSCK_IGNORE: 'hasDot,SkipList' })).toThrow(
      /\("SkipList" is not one\)$/,
    );
  });

  it('refuses a timeout Node’s timers cannot hold (they would fire at once)', () => {
    expect(() => workerTuningFromEnv({ PUSHGATE_SHUTDOWN_TIMEOUT_MS: '3000000000' })).toThrow(
      'PUSHGATE_SHUTDOWN_TIMEOUT_MS="3000000000" must be a positive integer of milliseconds up to 2147483647',
    );
    expect(() => workerTuningFromEnv({ PUSHGATE_JOB_LOCK_MS: '0' })).toThrow(/PUSHGATE_JOB_LOCK_MS="0"/);
  });

  it('names each knob by what it counts', () => {
    expect(() => workerTuningFromEnv({ PUSHGATE_WORKER_CONCURRENCY: '2.5' })).toThrow(
      /^PUSHGATE_WORKER_CONCURRENCY="2.5" must be a positive integer$/,
    );
    expect(() => workerTuningFromEnv({ PUSHGATE_GIT_FETCH_MAX_BYTES: '1G' })).toThrow(
      /^PUSHGATE_GIT_FETCH_MAX_BYTES="1G" must be a positive integer of bytes$/,
    );
    expect(() => workerTuningFromEnv({ PUSHGATE_GIT_FETCH_TIMEOUT_MS: '-1' })).toThrow(
      /^PUSHGATE_GIT_FETCH_TIMEOUT_MS="-1" must be a positive integer of milliseconds up to 2147483647$/,
    );
  });
});

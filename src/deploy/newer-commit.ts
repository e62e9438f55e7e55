import type { EnvironmentConfig } from '../config/schema.js';
import type { MirrorCache } from '../git/mirror-cache.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { NewerCommitCheck } from '../kube/types.js';
import type { JobStore } from '../status/job-store.js';
import type { QueuedBeforeFetch } from './queued-behind.js';

/** Redis is asked at most this often during a health wait. */
export const NEWER_COMMIT_CHECK_MS = 1_000;
/**
 * While jobs already looked at stay queued, the branch is fetched again this often: one of
 * them (a sync, a re-sync) deploys whatever the head becomes, a push whose webhook was lost too.
 */
export const QUEUED_RECHECK_MS = 10_000;

export interface NewerCommitWatch {
  store: Pick<JobStore, 'queuedJobIds' | 'claimMarks'>;
  mirrors: Pick<MirrorCache, 'fetchBranch'>;
  environment: Pick<EnvironmentConfig, 'name' | 'repo' | 'branch'>;
  jobId: string;
  /** The commit this job applied. */
  sha: string;
  logger: Logger;
  /**
   * Called when jobs queued meanwhile bring nothing newer (the head is still `sha`): those of
   * webhooks of older commits can give way now (see supersedeQueuedBehind in the worker).
   */
  onQueuedBehind?: (head: string, queued: QueuedBeforeFetch) => Promise<void>;
  /** The worker's shutdown: a fetch of the check stops with it. */
  signal?: AbortSignal;
  /** Whether the environment is suspended now: jobs queued behind are held, so none of them ends the wait. */
  suspended?: () => Promise<boolean>;
}

/** The longest one ask of the watch holds up the readiness polling; the check goes on behind. */
const ANSWER_WAIT_MS = 250;

/**
 * For the health wait (DeployRequest.newerCommit): the branch's head, once a job of the
 * environment is queued behind this one and the head is no longer the commit applied. Both
 * are needed: a queued job alone may be a late webhook of an older commit (it will give way)
 * or a sync of this very commit, and a moved head without a job has no one to deploy it.
 * The branch is fetched when a queued job appears that was not seen yet, and again every
 * QUEUED_RECHECK_MS while jobs seen stay queued. One check runs at a time, in the background:
 * a slow git server delays this answer, never the polling of the workloads (a ready one still
 * ends the wait at once).
 */
export function watchForNewerCommit(watch: NewerCommitWatch): NewerCommitCheck {
  const seen = new Set<string>();
  let stopped = false;
  // Ends a fetch of the check with the wait (or the worker): it must not hold the mirror's
  // fetch queue, which the next deploy's own fetch waits in.
  const ended = new AbortController();
  const fetchSignal = watch.signal ? AbortSignal.any([ended.signal, watch.signal]) : ended.signal;
  let nextCheckMs = 0;
  let lastFetchMs = 0;
  let answer: string | undefined;
  let checking: Promise<void> | undefined;

  const check = async (): Promise<string | undefined> => {
    try {
      const queued = await watch.store.queuedJobIds(watch.environment.name, watch.jobId);
      const fresh = queued.filter((id) => !seen.has(id));
      if (fresh.length === 0 && (queued.length === 0 || Date.now() - lastFetchMs < QUEUED_RECHECK_MS))
        return undefined;
      if (await watch.suspended?.()) return undefined;
      if (stopped) return undefined;
      const claimMarks = await watch.store.claimMarks(fresh);
      lastFetchMs = Date.now();
      const { repo, branch } = watch.environment;
      const head = await watch.mirrors.fetchBranch(
        { url: repo.url, provider: repo.provider },
        branch,
        fetchSignal,
      );
      // The deploy has moved on (its wait ended): the answer is no one's business now.
      if (stopped) return undefined;
      for (const id of fresh) seen.add(id);
      if (head.toLowerCase() === watch.sha.toLowerCase()) {
        // Only those seen before the fetch: one queued since may be of a newer push.
        if (fresh.length > 0) await watch.onQueuedBehind?.(head, { ids: fresh, claimMarks });
        return undefined;
      }
      watch.logger.info({ head, queued: fresh }, 'a newer commit is queued: the health wait ends');
      return head;
    } catch (error) {
      if (stopped) return undefined;
      // Only a shortcut: the wait goes on to its own end.
      watch.logger.warn(
        { err: errorMessage(error) },
        'could not look for a newer commit during the health wait',
      );
      return undefined;
    }
  };

  const ask = async (): Promise<string | undefined> => {
    if (answer === undefined && checking === undefined && Date.now() >= nextCheckMs) {
      nextCheckMs = Date.now() + NEWER_COMMIT_CHECK_MS;
      checking = check().then((head) => {
        answer ??= head;
        checking = undefined;
      });
    }
    if (checking) await Promise.race([checking, delay(ANSWER_WAIT_MS)]);
    return answer;
  };
  return {
    ask,
    stop: () => {
      stopped = true;
      ended.abort(new Error('the health wait is over'));
    },
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

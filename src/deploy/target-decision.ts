import type { JobState } from '../status/job-record.js';

/** What a job does once it knows the branch head: the level-triggered, newest-wins rule of SPEC §4. */
export type TargetDecision = { action: 'deploy'; sha: string } | { action: 'supersede'; by: string };

export interface TargetFacts {
  /** The commit the webhook announced; absent for manual and reconcile jobs. */
  announcedSha: string | undefined;
  /** The branch head just fetched. */
  head: string;
  /** The commit the cluster holds as a whole (EnvironmentStatus.liveSha). */
  liveSha: string | null;
  /** The state of another job for `head`, when there is one. */
  headJobState: JobState | undefined;
}

/**
 * A job always deploys the head, never an older commit: so a late, duplicate or redelivered
 * webhook cannot roll an environment back, while a force-push back to an older commit (the
 * head IS that commit) is deployed. A webhook job whose commit is no longer the head gives
 * way when the head is already applied or has a job of its own that is queued, running or
 * failed (a stale webhook must not re-run a failed deploy: the fix is a new push or a sync);
 * otherwise it catches the environment up to the head (a webhook for the head was missed).
 */
export function decideTarget(facts: TargetFacts): TargetDecision {
  const { announcedSha, head } = facts;
  if (announcedSha === undefined || sameCommit(announcedSha, head)) return { action: 'deploy', sha: head };
  if (facts.liveSha !== null && sameCommit(facts.liveSha, head)) return { action: 'supersede', by: head };
  if (facts.headJobState !== undefined && HEAD_JOB_STATES_THAT_WIN.includes(facts.headJobState))
    return { action: 'supersede', by: head };
  return { action: 'deploy', sha: head };
}

/**
 * A head job that succeeded does not count: the environment was applied past it since (else
 * the head would be the last applied), so the head is deployed again to catch up.
 */
const HEAD_JOB_STATES_THAT_WIN: readonly JobState[] = ['queued', 'running', 'failed'];

function sameCommit(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

import type { EnvironmentConfig } from '../config/schema.js';
import type { JobRecord } from './job-record.js';
import type { EnvironmentStatus } from './job-store.js';
import type { Suspension } from './suspensions.js';

/** An environment as SPEC §5 shows it, in the API and in `pushgate status --json`. */
export interface EnvironmentView {
  name: string;
  branch: string;
  cluster: string;
  lastAppliedSha: string | null;
  lastAppliedAt: string | null;
  /**
   * The newest job, whatever its state: a queued or running deploy shows here first; a
   * superseded one gives way to the job that took its place (JobStore.lastJob). `sha`: the
   * commit it deployed or tried (null before its fetch); after a failed deploy it tells what
   * the cluster may partly run, which `lastAppliedSha` (the last success) does not.
   */
  lastJob: { id: string; state: JobRecord['state']; sha: string | null; finishedAt: string | null } | null;
  /** Set while deploys are held (`pushgate suspend`): when, and why. */
  suspended: Suspension | null;
}

export function environmentView(
  environment: EnvironmentConfig,
  status: EnvironmentStatus,
  latest: Pick<JobRecord, 'id' | 'state' | 'sha' | 'finishedAt'> | null | undefined,
): EnvironmentView {
  return {
    name: environment.name,
    branch: environment.branch,
    cluster: environment.cluster,
    lastAppliedSha: status.lastAppliedSha,
    lastAppliedAt: status.lastAppliedAt,
    lastJob: latest
      ? { id: latest.id, state: latest.state, sha: latest.sha, finishedAt: latest.finishedAt }
      : null,
    suspended: status.suspended,
  };
}

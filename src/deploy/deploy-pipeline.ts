import type { EnvironmentConfig } from '../config/schema.js';
import type { MirrorCache } from '../git/mirror-cache.js';
import type { DeployRequest } from '../kube/types.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';
import { loadManifests, type SkippedPath } from '../manifests/load.js';
import type { Trigger } from '../queue/job-data.js';
import type { JobState, ResourceResult } from '../status/job-record.js';
import type { JobStore } from '../status/job-store.js';
import type { ApplyEngine } from './apply-engine.js';
import type { HeldLock } from './environment-lock.js';
import { watchForNewerCommit } from './newer-commit.js';
import { environmentTarget, targetDifferences } from './config-skew.js';
import { newlySkippedError, newlySkippedFolders } from './skipped-folders.js';
import { decideTarget } from './target-decision.js';
import type { QueuedBeforeFetch } from './queued-behind.js';

export interface PipelineDeps {
  mirrors: MirrorCache;
  store: JobStore;
  engine: ApplyEngine;
}

export interface PipelineJob {
  jobId: string;
  environment: EnvironmentConfig;
  trigger: Trigger;
  lock: HeldLock;
  logger: Logger;
  /** Whether another job's deploy of the environment ran since this job's previous run (JobRun.deployRunStarted). */
  onDeployRun?: (afterOtherDeploy: boolean) => void;
  /** Called once the commit to apply is known, before anything is written. */
  onDeploying(sha: string): Promise<void>;
  /**
   * Finishes those of these queued jobs that would only give way to `head` when their turn
   * came: at the start of the deploy, and when more arrive during its health wait. Only jobs
   * known before `head` was fetched: a later one may be of a newer push.
   */
  supersedeQueuedBehind?: (head: string, queued: QueuedBeforeFetch) => Promise<void>;
  /** Every object's outcome so far, after each write stage of the apply. */
  onWritten?: (resources: ResourceResult[]) => Promise<void>;
  /** The objects a stage is about to create or change, before it writes them (DeployRequest.onChanging). */
  onChanging?: (resources: ResourceResult[]) => Promise<void>;
  /** The step the apply is at (`dry-run ok: …`, `waiting until … for 2 workloads …`). */
  onProgress?: (message: string) => void;
  signal?: AbortSignal;
}

export type PipelineResult =
  | {
      outcome: 'applied';
      sha: string;
      resources: ResourceResult[];
      warnings?: string[];
      /** The health wait ended early for this newer commit, with these workloads not ready yet. */
      overtaken?: { by: string; notReady: string[] };
    }
  | { outcome: 'superseded'; announcedSha: string; head: string };

/**
 * fetch → decide (newest wins) → check out → load → apply. Runs while the environment lock
 * is held, so the decision and the apply see the same state of the environment.
 */
export async function runDeployPipeline(deps: PipelineDeps, job: PipelineJob): Promise<PipelineResult> {
  const { environment, trigger, logger } = job;
  const repo = { url: environment.repo.url, provider: environment.repo.provider };
  // All read before the fetch: what was live then, and which jobs were queued by then.
  const status = await deps.store.environmentStatus(environment.name);
  const { lastAppliedSha, inventoryNamespaces } = status;
  // Live only where it was applied: after a change of branch, path, cluster or namespace, the
  // head is deployed again even when it is the same commit.
  const movedFrom = status.lastAppliedTarget;
  const liveSha =
    movedFrom === null || targetDifferences(movedFrom, environmentTarget(environment)).length === 0
      ? status.liveSha
      : null;
  const queuedIds = await deps.store.queuedJobIds(environment.name, job.jobId);
  const queuedBefore = { ids: queuedIds, claimMarks: await deps.store.claimMarks(queuedIds) };
  await job.lock.assertHeld();
  const { mark: startMark, afterOtherDeploy } = await deps.store.recordDeployStarting(
    environment.name,
    job.jobId,
  );
  job.onDeployRun?.(afterOtherDeploy);
  try {
    const head = await deps.mirrors.fetchBranch(repo, environment.branch, job.signal);
    logger.info({ head, branch: environment.branch }, 'fetched branch head');

    const announcedSha = trigger.sha?.toLowerCase();
    let headJobState: JobState | undefined;
    if (announcedSha !== undefined && announcedSha !== head) {
      const other = await deps.store.jobForSha(environment.name, head);
      if (other !== null && other.id !== job.jobId) headJobState = other.state;
    }
    const decision = decideTarget({ announcedSha, head, liveSha, headJobState });
    if (decision.action === 'supersede')
      return { outcome: 'superseded', announcedSha: announcedSha ?? head, head: decision.by };
    await job.onDeploying(decision.sha);
    await job.supersedeQueuedBehind?.(decision.sha, queuedBefore);
    // The commit whose reading of `path` the skipped folders are checked against (skipped-folders.ts).
    const pathLastRead = movedFrom === null || movedFrom.path === environment.path ? lastAppliedSha : null;
    return await applyCommit(deps, job, decision.sha, pathLastRead, {
      lastAppliedSha,
      installation: await deps.store.installationId(),
      installationKey: deps.store.installationKey,
      inventoryHomes: {
        recorded: inventoryNamespaces,
        add: (namespace) => deps.store.addInventoryNamespace(environment.name, namespace),
        remove: (namespace) => deps.store.removeInventoryNamespace(environment.name, namespace),
      },
    });
  } finally {
    // Unless a commit was chosen (onDeploying recorded it), nothing was written: what was live
    // still is. Left in place should this fail: then no commit counts as live, the safe side.
    await deps.store
      .restoreDeploying(environment.name, startMark)
      .catch((error: unknown) =>
        logger.warn({ err: errorMessage(error) }, 'could not record that this job deployed nothing'),
      );
  }
}

async function applyCommit(
  deps: PipelineDeps,
  job: PipelineJob,
  sha: string,
  pathLastRead: string | null,
  lastDeploy: Pick<DeployRequest, 'lastAppliedSha' | 'inventoryHomes' | 'installation' | 'installationKey'>,
): Promise<PipelineResult> {
  const { environment, logger } = job;
  const repo = { url: environment.repo.url, provider: environment.repo.provider };
  const tree = await deps.mirrors.checkout(repo, sha, environment.path);
  try {
    let skipped: readonly SkippedPath[] = [];
    const manifests = await loadManifests(tree.dir, environment.path, {
      logger,
      environment,
      onSkipped: (folders) => (skipped = folders),
    });
    if (environment.prune && pathLastRead && pathLastRead !== sha && skipped.length > 0) {
      const folders = await newlySkippedFolders(deps.mirrors, repo, pathLastRead, environment.path, skipped);
      if (folders.length > 0) throw newlySkippedError(folders, pathLastRead);
    }
    logger.info({ sha, objects: manifests.length }, 'manifests loaded');
    const outcome = await deps.engine.deploy({
      environment,
      manifests,
      sha,
      ...lastDeploy,
      jobId: job.jobId,
      // The engine logs each step itself; the commit goes on its every line.
      logger: logger.child({ sha }),
      assertLockHeld: job.lock.assertHeld,
      assertLockHeldNow: job.lock.assertHeldNow,
      lockLost: job.lock.isLost,
      onWritten: job.onWritten,
      onChanging: job.onChanging,
      onProgress: job.onProgress,
      newerCommit: watchForNewerCommit({
        store: deps.store,
        mirrors: deps.mirrors,
        environment,
        jobId: job.jobId,
        sha,
        logger,
        onQueuedBehind: job.supersedeQueuedBehind,
        suspended: async () => (await deps.store.suspensions.get(environment.name)) !== null,
        ...(job.signal ? { signal: job.signal } : {}),
      }),
      signal: job.signal,
    });
    return {
      outcome: 'applied',
      sha,
      resources: outcome.resources,
      ...(outcome.warnings ? { warnings: outcome.warnings } : {}),
      ...(outcome.overtaken ? { overtaken: outcome.overtaken } : {}),
    };
  } finally {
    await tree.remove();
  }
}

import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { ProcessDeps } from './job-processor-deps.js';

/**
 * Whether the branch has moved past the commit the environment's running deploy applies (a
 * push whose webhook was lost): then a re-sync due meanwhile is queued rather than skipped,
 * and the running deploy's health wait, seeing it, gives way (see watchForNewerCommit).
 */
export async function headMovedPastRunningDeploy(
  environmentName: string,
  deps: Pick<ProcessDeps, 'config' | 'store' | 'pipeline' | 'signal'>,
  logger: Logger,
): Promise<boolean> {
  const environment = deps.config.environments.find((candidate) => candidate.name === environmentName);
  if (!environment) return false;
  try {
    // One queued re-sync deploys whatever the head is by its turn: never a pile of them.
    const queued = await deps.store.getMany(await deps.store.queuedJobIds(environmentName, ''));
    if (queued.some((record) => record.trigger.kind === 'reconcile')) return false;
    const { deployingSha, deployStarting } = await deps.store.environmentStatus(environmentName);
    // Not known what the running deploy chose (still fetching): queued, at worst a quiet re-apply.
    if (deployStarting || deployingSha === null) return true;
    const { repo, branch } = environment;
    const head = await deps.pipeline.mirrors.fetchBranch(
      { url: repo.url, provider: repo.provider },
      branch,
      deps.signal,
    );
    return head !== deployingSha;
  } catch (error) {
    logger.warn({ err: errorMessage(error) }, 'could not fetch the branch while its environment is busy');
    return true;
  }
}

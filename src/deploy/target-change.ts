import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { RedisClient } from '../queue/connection.js';
import type { EnvironmentTarget } from '../queue/job-data.js';
import type { Keys } from '../queue/keys.js';
import type { DeployProducer } from '../queue/producer.js';
import type { JobStore } from '../status/job-store.js';
import { describeTargetChange, environmentTarget, targetDifferences } from './config-skew.js';
import type { WorkerPresence } from './worker-presence.js';

/**
 * How long one worker's claim on queueing the move of an environment keeps the others off:
 * also how soon a move that failed (or whose job was lost) is queued again, as Flux retries a
 * failed reconciliation at its `retryInterval`.
 */
export const TARGET_CHANGE_RETRY_SECONDS = 600;

/** Names where a configuration sends an environment, in the key of the claim on its move. */
export function targetDigest(target: EnvironmentTarget): string {
  return createHash('sha256').update(JSON.stringify(target)).digest('hex').slice(0, 16);
}

export interface TargetChangeDeps {
  config: Config;
  store: JobStore;
  producer: DeployProducer;
  presence: WorkerPresence;
  redis: RedisClient;
  keys: Keys;
  logger: Logger;
}

/**
 * A change of an environment's branch, path, cluster or namespace takes effect once workers
 * with the new configuration run, as a changed Flux Kustomization or Argo CD Application is
 * reconciled at once: an environment whose last success went elsewhere (or was recorded by a
 * version that kept no target) gets a re-sync of its branch head, which also prunes what the
 * old namespace's inventory holds. Only by a worker of the environment's newest configuration
 * (worker-presence), so a worker of an old one that restarts during the rollout moves nothing
 * back; one claim per change and last success, so however many workers run this, one queues
 * it. Workers run it at start and periodically: a move that failed is queued again once its
 * claim lapses. A suspended environment is left to its resume. Returns the jobs queued.
 */
export async function queueDeploysOfChangedTargets(deps: TargetChangeDeps): Promise<string[]> {
  const queued: string[] = [];
  for (const environment of deps.config.environments) {
    const logger = deps.logger.child({ environment: environment.name });
    try {
      const status = await deps.store.environmentStatus(environment.name);
      if (status.lastAppliedSha === null) continue;
      const before = status.lastAppliedTarget;
      const after = environmentTarget(environment);
      if (before !== null && targetDifferences(before, after).length === 0) continue;
      const newest = await deps.presence.newest(environment.name);
      if (newest && !newest.mine) continue;
      // One move at a time: a claim that lapsed while its move still runs (a long health wait).
      const moving = (await deps.store.list({ environment: environment.name, limit: 20 })).some(
        (job) =>
          job.trigger.kind === 'reconcile' &&
          job.target !== undefined &&
          (job.state === 'queued' || job.state === 'running'),
      );
      if (moving) continue;
      if (status.suspended) {
        logger.debug('configuration changed since the last deploy; suspended, so the resume deploys it');
        continue;
      }
      const claimed = await deps.redis.set(
        deps.keys.targetChangeQueued(
          environment.name,
          `${targetDigest(after)}:${status.lastAppliedAt ?? ''}`,
        ),
        new Date().toISOString(),
        'EX',
        TARGET_CHANGE_RETRY_SECONDS,
        'NX',
      );
      if (claimed !== 'OK') continue;
      const job = await deps.producer.enqueue(
        environment.name,
        { kind: 'reconcile' },
        undefined,
        undefined,
        after,
      );
      queued.push(job.id);
      logger.info(
        {
          jobId: job.id,
          change: before
            ? describeTargetChange(before, after)
            : 'not recorded by the version that deployed it',
        },
        'configuration changed since the last deploy: re-sync of the branch head queued',
      );
    } catch (error) {
      // The next run of this, a push, a re-sync or `pushgate sync` deploys it all the same.
      logger.warn({ err: errorMessage(error) }, 'could not queue the deploy of a changed configuration');
    }
  }
  return queued;
}

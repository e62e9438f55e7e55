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

/** How long the first worker's claim on deploying one changed configuration keeps the others off. */
const TARGET_CHANGE_CLAIM_SECONDS = 86_400;

/** Names one configuration of an environment in the key of the claim on deploying it. */
export function targetDigest(target: EnvironmentTarget): string {
  return createHash('sha256').update(JSON.stringify(target)).digest('hex').slice(0, 16);
}

export interface TargetChangeDeps {
  config: Config;
  store: JobStore;
  producer: DeployProducer;
  redis: RedisClient;
  keys: Keys;
  logger: Logger;
}

/**
 * A change of an environment's branch, path, cluster or namespace takes effect when workers
 * with the new configuration start, as a changed Flux Kustomization or Argo CD Application is
 * reconciled at once: each such environment whose last deploy went elsewhere gets a re-sync
 * of its branch head (which also prunes what the old namespace's inventory holds). One worker
 * queues it, whoever starts first; the job carries the new configuration, so a worker still
 * on the old one hands it back (config-skew). A suspended environment is left to its resume.
 * Returns the ids of the jobs queued.
 */
export async function queueDeploysOfChangedTargets(deps: TargetChangeDeps): Promise<string[]> {
  const queued: string[] = [];
  for (const environment of deps.config.environments) {
    const logger = deps.logger.child({ environment: environment.name });
    try {
      const status = await deps.store.environmentStatus(environment.name);
      const before = status.lastAppliedTarget;
      const after = environmentTarget(environment);
      if (before === null || targetDifferences(before, after).length === 0) continue;
      const change = describeTargetChange(before, after);
      if (status.suspended) {
        logger.info(
          { change },
          'configuration changed since the last deploy; suspended, so the resume deploys it',
        );
        continue;
      }
      const claimed = await deps.redis.set(
        deps.keys.targetChangeQueued(environment.name, targetDigest(after)),
        new Date().toISOString(),
        'EX',
        TARGET_CHANGE_CLAIM_SECONDS,
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
        { jobId: job.id, change },
        'configuration changed since the last deploy: re-sync of the branch head queued',
      );
    } catch (error) {
      // The periodic re-sync, a push or `pushgate sync` deploys it all the same.
      logger.warn({ err: errorMessage(error) }, 'could not queue the deploy of a changed configuration');
    }
  }
  return queued;
}

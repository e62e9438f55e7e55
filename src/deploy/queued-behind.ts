import type { EnvironmentConfig } from '../config/schema.js';
import { errorMessage } from '../lib/errors.js';
import { configSkew } from './config-skew.js';
import type { HeldLock } from './environment-lock.js';
import type { ProcessDeps } from './job-processor-deps.js';

/** Jobs queued behind a deploy, as read before it fetched the head, with their claim marks then. */
export interface QueuedBeforeFetch {
  ids: readonly string[];
  /** JobStore.claimMarks of `ids`, in order. */
  claimMarks: readonly (string | null)[];
}

/**
 * Webhook jobs queued behind a deploy of `head` for other commits would give way to it when
 * their turn came (newest wins: the head has a running job). They are finished now, so
 * `pushgate status` and their commits show it at once, not after this deploy's health wait.
 * Those of `head` itself are finished too (coveredBy): this deploy is theirs. Runs under the
 * environment's lock, which their own runs need first. Manual syncs stay queued: they were
 * asked for. Bookkeeping: a failure here never fails the deploy.
 */
export async function supersedeQueuedBehind(
  deployJobId: string,
  head: string,
  queued: QueuedBeforeFetch,
  lock: HeldLock,
  environment: EnvironmentConfig,
  deps: Pick<ProcessDeps, 'logger' | 'store' | 'run'>,
): Promise<void> {
  try {
    const { ids: jobIds, claimMarks } = queued;
    const before = new Map(jobIds.map((id, index) => [id, claimMarks[index] ?? null]));
    for (const record of await deps.store.getMany(jobIds)) {
      const announced = record.trigger.kind === 'webhook' ? record.trigger.sha?.toLowerCase() : undefined;
      if (record.state !== 'queued' || announced === undefined) continue;
      // Queued with another configuration of the environment (a change rolling out): left to
      // its own turn, which deploys it (or finds its head live) with the newest configuration.
      if (configSkew(record.target, environment) !== undefined) continue;
      // Its own run starts only under the lock: while ours, the record stays queued. (A check
      // of the health wait that ends after the deploy finds the lock gone: its turn will do.)
      const held = await lock.assertHeld().then(
        () => true,
        () => false,
      );
      if (!held) return;
      // Joined by another request since the head was fetched (a force-push back to its commit,
      // say): `head` may be older than that push, so its own turn fetches again and decides.
      // Sealed otherwise, in the same step: a push of its commit from now on gets its own job.
      if (!(await deps.store.sealClaim(record.id, before.get(record.id) ?? null))) continue;
      const logger = deps.logger.child({ jobId: record.id, environment: environment.name });
      // One of this very commit (held by a suspension, or claimed just before a sync or re-sync
      // chose it) would only apply it again after this deploy, and wait out its health again.
      const run = deps.run(environment, record, logger);
      if (announced === head.toLowerCase()) await run.coveredBy(deployJobId, head);
      else await run.superseded(announced, head);
    }
  } catch (error) {
    deps.logger.warn(
      { environment: environment.name, err: errorMessage(error) },
      'could not finish the jobs queued behind this deploy',
    );
  }
}

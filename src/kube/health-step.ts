import { counted } from '../lib/counted.js';
import { PushgateError } from '../lib/errors.js';
import type { PreparedObject } from '../manifests/prepare.js';
import { describeRef } from '../manifests/resource-info.js';
import type { ResourceResult } from '../status/job-record.js';
import type { ClusterClient } from './cluster.js';
import type { Results } from './deploy-results.js';
import { isHealthChecked, isJob, JOB_FAILED, type Readiness } from './health.js';
import { mapWithConcurrency } from './map-with-concurrency.js';
import { CONCURRENCY } from './plan.js';
import { hasPods, podProblems } from './pod-problems.js';
import { DeployError, type DeployOutcome, type DeployRequest } from './types.js';
import { waitForReadiness, type UnhealthyObject } from './wait.js';

/** Workloads whose pods a failed wait reads to say why: the first ones name the cause. */
const PODS_READ_MAX = 10;

/**
 * Every Deployment, StatefulSet, DaemonSet and Job of the set, unchanged ones too (kstatus
 * judges the cluster, not the diff): a deploy is healthy only when all of them are. Returns
 * what overtook the wait when a newer commit's job ended it early (as Flux's
 * CancelHealthCheckOnNewRevision): a fix pushed for a failing rollout goes out at once
 * instead of after `healthTimeout`.
 */
export async function checkHealth(
  client: ClusterClient,
  request: DeployRequest,
  ordered: readonly PreparedObject[],
  results: Results,
  progress: (message: string, details?: Record<string, unknown>) => void,
): Promise<DeployOutcome['overtaken']> {
  const watched = ordered.filter((object) => isHealthChecked(object.ref));
  if (watched.length === 0) return undefined;
  const until = new Date(Date.now() + request.environment.healthTimeout).toISOString();
  progress(
    `waiting up to ${request.environment.healthTimeout / 1000}s for ${counted(watched.length, 'workload')} to be ready`,
  );
  // What the wait is on, as it changes (not every poll): the job record shows it while running.
  let said = '';
  const onPoll = (pending: readonly UnhealthyObject[]): void => {
    const [first] = pending;
    if (!first) return;
    const more = pending.length > 1 ? ` (and ${pending.length - 1} more)` : '';
    const message = `waiting until ${until} for ${counted(pending.length, 'workload')} to be ready: ${describeRef(first.object.ref)}: ${first.readiness.message}${more}`;
    if (message === said) return;
    said = message;
    progress(message);
  };
  const newer = request.newerCommit;
  const { lockLost } = request;
  const { unhealthy, interruptedBy } = await waitForReadiness(
    client,
    watched,
    request.environment.healthTimeout,
    {
      signal: request.signal,
      onPoll,
      ...(newer ? { interrupt: () => newer.ask() } : {}),
      // A worker that lost the job (stalled past its locks) must not wait on, and then judge
      // a deploy whose verdict is the new holder's.
      ...(lockLost
        ? {
            assertStillOurs: async () => {
              if (await lockLost())
                throw new PushgateError(
                  'transient',
                  `lost the deploy lock of environment "${request.environment.name}" during the health wait`,
                );
            },
          }
        : {}),
    },
  ).finally(() => newer?.stop());
  if (unhealthy.length === 0) {
    progress('all workloads ready');
    return undefined;
  }
  // Said once the wait is over, not every round: one LIST of pods per workload that let it down.
  const reasons = new Map<PreparedObject, string>();
  if (interruptedBy === undefined) {
    const workloads = unhealthy.filter(({ object }) => hasPods(object.object)).slice(0, PODS_READ_MAX);
    await mapWithConcurrency(workloads, CONCURRENCY, async ({ object }) => {
      const problems = await podProblems(client, object.object, request.signal);
      if (problems !== undefined) reasons.set(object, ` (${problems})`);
    });
  }
  const detail = (object: PreparedObject, readiness: Readiness): string =>
    `${readiness.message}${reasons.get(object) ?? ''}${rerunHint(object, readiness)}`;
  const lines = unhealthy.map(
    ({ object, readiness }) => `${describeRef(object.ref)}: ${detail(object, readiness)}`,
  );
  if (interruptedBy !== undefined) {
    for (const { object, readiness } of unhealthy) {
      const current = results.get(object);
      results.set(
        object,
        current?.action ?? 'unchanged',
        withEarlier(current, `not ready when a newer commit ended the wait: ${readiness.message}`),
      );
    }
    progress(`health wait ended: ${interruptedBy} is newer and queued`, { by: interruptedBy });
    return { by: interruptedBy, notReady: lines };
  }
  const failedEarly = unhealthy.some((entry) => entry.readiness.state === 'failed');
  for (const { object, readiness } of unhealthy) {
    const current = results.get(object);
    results.set(
      object,
      current?.action ?? 'unchanged',
      withEarlier(current, `not ready: ${detail(object, readiness)}`),
    );
  }
  const headline = failedEarly
    ? 'workloads failed'
    : `workloads not ready after ${request.environment.healthTimeout / 1000}s`;
  throw new DeployError('health_timeout', `${headline}:\n  ${lines.join('\n  ')}`, {
    permanent: true,
    resources: results.list(),
  });
}

/**
 * A failed Job stays failed: a later deploy that leaves it as it is does not run it again, and
 * its pod template cannot change. Says what does, since every deploy of the set fails on it till then.
 */
function rerunHint(object: PreparedObject, readiness: Readiness): string {
  if (readiness.state !== 'failed' || !isJob(object.object) || !readiness.message.startsWith(JOB_FAILED))
    return '';
  return ' (a deploy does not run a failed Job again: delete it and the next deploy creates it anew, or give it a new name in git)';
}

/** What the apply said of an object (`replaced: …`) stays in front of what its health adds. */
function withEarlier(result: ResourceResult | undefined, message: string): string {
  return result?.message ? `${result.message}; ${message}` : message;
}

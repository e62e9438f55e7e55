import { groupByRank } from '../manifests/order.js';
import type { PreparedObject } from '../manifests/prepare.js';
import type { ClusterClient, LiveObject } from './cluster.js';
import type { Results } from './deploy-results.js';
import { objectFailure, type ObjectFailure } from './failures.js';
import { applyTakingOver } from './field-takeover.js';
import { deleteForReplacement, FORCE_ANNOTATION, restoreReplaced } from './force-replace.js';
import { KubeApiError } from './api-error.js';
import { settleWithConcurrency } from './map-with-concurrency.js';
import { CONCURRENCY, type PlannedObject } from './plan.js';
import type { ProgressWrites } from './progress-writes.js';
import type { TakenWithApply } from './takeover-steps.js';

const REPLACED = `replaced: deleted and created again (a field it changes is immutable; ${FORCE_ANNOTATION}: enabled)`;

/**
 * Deletes `live` and creates the new version, or, when that create is refused, the old one
 * again (restoreReplaced), saying which in the error.
 */
async function replaceObject(
  client: ClusterClient,
  object: PreparedObject,
  live: LiveObject,
  beforeWrite: () => Promise<void>,
  signal: AbortSignal | undefined,
): Promise<void> {
  await deleteForReplacement(client, object, live, signal);
  // The wait for it to go can outlast the lock: never create it again without it.
  await beforeWrite();
  try {
    await client.apply(object.resource, object.object, { signal });
  } catch (error) {
    // No answer, or a fault the retry may not meet: the new version may be there, and the
    // retry creates it if not.
    if (!(error instanceof KubeApiError) || error.transient) throw error;
    const restored = await restoreReplaced(client, object, live, signal);
    error.message += restored
      ? ' (deleted to be replaced, then created again as it was)'
      : ' (deleted to be replaced, and it could not be created again as it was: it is gone until a deploy creates it)';
    throw error;
  }
}

/**
 * Applies the changed objects of one stage, kind group by kind group, each group in
 * parallel. `beforeWrite` (the lock check) runs before every group, so a worker that lost
 * its lock mid-stage stops before the next group instead of rolling back whoever took over.
 */
export async function applyChanged(
  client: ClusterClient,
  objects: readonly PreparedObject[],
  actions: ReadonlyMap<PreparedObject, PlannedObject['action']>,
  plannedBy: ReadonlyMap<PreparedObject, PlannedObject>,
  results: Results,
  beforeWrite: () => Promise<void>,
  signal: AbortSignal | undefined,
  written: ProgressWrites,
  taken: TakenWithApply,
  /** The lock checked without a round trip before each object's write (KubeDeployRequest.assertLockHeldNow). */
  beforeEachWrite: () => void = () => undefined,
): Promise<ObjectFailure[]> {
  try {
    for (const object of objects) {
      if (actions.get(object) === 'unchanged')
        results.set(object, 'unchanged', plannedBy.get(object)?.createOnly);
    }
    const changed = objects.filter((object) => actions.get(object) !== 'unchanged');
    for (const group of groupByRank(changed.map((object) => ({ ...object.ref, object })))) {
      // Group by group, so a stop before a later group leaves no word that it may be written.
      await written.changing(
        group.map(({ object }) => ({
          object,
          action: actions.get(object) === 'created' ? 'created' : 'configured',
        })),
      );
      await beforeWrite();
      const settled = await settleWithConcurrency(group, CONCURRENCY, async ({ object }) => {
        beforeEachWrite();
        const planned = plannedBy.get(object);
        const replace = planned?.replace;
        try {
          if (replace) {
            await replaceObject(client, object, replace.live, beforeWrite, signal);
          } else if (planned?.takeover) {
            const { taken: took, warning } = await applyTakingOver(client, object, signal);
            if (took || warning !== undefined) taken.done.add(object);
            if (warning !== undefined) taken.warn(warning);
          } else {
            await client.apply(object.resource, object.object, { signal });
          }
        } catch (error) {
          // No answer is no refusal: the apply may have landed, and giving the old ownership
          // back would undo it.
          if (!(error instanceof KubeApiError) || error.transient) taken.landed(object);
          throw error;
        }
        taken.landed(object);
        // Recorded as each lands: a worker killed mid-group leaves what it wrote to its successor.
        results.set(object, actions.get(object) ?? 'configured', replace ? REPLACED : undefined);
        written.soon();
      });
      signal?.throwIfAborted();
      // A lapsed lock refused the rest of the group: the deploy ends as a lost lock, not as failed objects.
      beforeEachWrite();
      const failures: ObjectFailure[] = [];
      settled.forEach((outcome, index) => {
        const { object } = group[index] as { object: PreparedObject };
        if (outcome.status === 'rejected')
          failures.push(objectFailure(object, 'apply failed', outcome.reason));
      });
      if (failures.length > 0) return failures;
    }
    return [];
  } finally {
    await written.idle();
  }
}

import { errorMessage } from '../lib/errors.js';
import type { PreparedObject } from '../manifests/prepare.js';
import { describeRef } from '../manifests/resource-info.js';
import type { ClusterClient } from './cluster.js';
import type { Results } from './deploy-results.js';
import { takeOverAndReapply, type TakeoverOutcome } from './field-takeover.js';
import { mapWithConcurrency } from './map-with-concurrency.js';
import { CONCURRENCY, type HandMadeRetry, type PlannedObject } from './plan.js';
import { redactSecretValues } from './secret-redaction.js';

/**
 * Puts back the ownership of hand-made fields the plan took for objects no apply followed,
 * when the deploy fails (best effort: it changes no value).
 */
export async function undoOwnership(handMade: HandMadeRetry | undefined): Promise<void> {
  if (!handMade || handMade.undos.size === 0) return;
  const undos = [...handMade.undos.values()];
  handMade.undos.clear();
  // Only while the lock is ours: what is left is pushgate owning fields it would remove next
  // time anyway, while a write now could put a stale entry over the next holder's apply.
  const held = await handMade.beforeWrite().then(
    () => true,
    () => false,
  );
  if (held) await Promise.all(undos.map((undo) => undo().catch(() => undefined)));
}

/**
 * Hand-made fields taken over (or refused) with a changed object's own apply, so the
 * takeover after the stages leaves those objects alone; its warnings, for the job.
 */
export interface TakenWithApply {
  done: Set<PreparedObject>;
  warn(warning: string): void;
  /** Applied: the plan's takeover of its hand-made fields, if any, is not given back. */
  landed(object: PreparedObject): void;
}

/**
 * Once everything applied: what kubectl set by hand on objects the commit did not change,
 * and git no longer declares, goes (changed ones had theirs taken with their apply).
 */
export async function takeOverAfterApply(
  client: ClusterClient,
  ordered: readonly PreparedObject[],
  plannedBy: ReadonlyMap<PreparedObject, PlannedObject>,
  results: Results,
  takenWithApply: TakenWithApply,
  assertLockHeld: () => Promise<void>,
  signal: AbortSignal | undefined,
): Promise<void> {
  const takeovers = ordered.filter((object) => {
    const planned = plannedBy.get(object);
    return (
      planned?.takeover !== undefined && planned.replace === undefined && !takenWithApply.done.has(object)
    );
  });
  if (takeovers.length > 0) {
    await assertLockHeld();
    const outcomes = await mapWithConcurrency(takeovers, CONCURRENCY, (object) =>
      takeOverAndReapply(client, object, signal).catch((error: unknown): TakeoverOutcome => ({
        taken: false,
        warning: `${describeRef(object.ref)}: hand-made fields not taken over: ${redactSecretValues(errorMessage(error), object.object)}`,
      })),
    );
    outcomes.forEach(({ changed, warning }, index) => {
      // Only the ownership moved (what was taken matched git): the object is as it was.
      if (changed) results.set(takeovers[index]!, 'configured');
      if (warning === undefined) return;
      takenWithApply.warn(warning);
    });
  }
}

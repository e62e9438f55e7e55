import type { LiveObject } from './cluster.js';

/** The finalizers a live object waits for before it goes. */
export function finalizersOf(live: LiveObject): string[] {
  const finalizers = live.metadata.finalizers;
  return Array.isArray(finalizers)
    ? finalizers.filter((item): item is string => typeof item === 'string')
    : [];
}

/**
 * The live object is being deleted: an apply would keep it only until its finalizers finish,
 * and report it `unchanged` meanwhile (a `git revert` of a prune, made while the PVC it deleted
 * waits for its pod). Transient: the deploy is tried again, and creates it once it is gone.
 */
export class BeingDeletedError extends Error {
  readonly transient = true;
  constructor(live: LiveObject) {
    const finalizers = finalizersOf(live);
    super(
      `being deleted (since ${String(live.metadata.deletionTimestamp)}` +
        `${finalizers.length > 0 ? `, until its finalizers finish: ${finalizers.join(', ')}` : ''}): ` +
        `applied now, it would still go, and its deletion cannot be undone. The deploy is tried ` +
        `again and creates it once it is gone; until then this environment's deploys stop here. ` +
        `Let the finalizers finish (a PVC's once no pod uses it), remove them if nothing will, or ` +
        `drop the object from git to deploy the rest`,
    );
    this.name = 'BeingDeletedError';
  }
}

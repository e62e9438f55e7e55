import type { ResourceResult } from '../status/job-record.js';

/** What an attempt changed, as opposed to what it found done or did not reach. */
const CHANGES: readonly ResourceResult['action'][] = ['created', 'configured', 'pruned'];

function keyOf(resource: ResourceResult): string {
  return `${resource.apiVersion}|${resource.kind}|${resource.namespace ?? ''}|${resource.name}`;
}

/**
 * The job's resources over all its attempts. A retry, or the worker that takes over from one
 * that died, finds what the earlier attempt wrote `unchanged` and what it pruned gone; the job
 * record is the audit trail, so each object keeps the change an earlier attempt made unless
 * this attempt's outcome says more (it changed or failed the object itself).
 */
export function mergeAttemptResources(
  earlier: readonly ResourceResult[],
  current: readonly ResourceResult[],
): ResourceResult[] {
  const changedEarlier = new Map(
    earlier
      .filter((resource) => CHANGES.includes(resource.action))
      .map((resource) => [keyOf(resource), resource]),
  );
  const merged = current.map((resource) => {
    const before = changedEarlier.get(keyOf(resource));
    changedEarlier.delete(keyOf(resource));
    if (!before) return resource;
    const keepEarlier =
      resource.action === 'unchanged' ||
      resource.action === 'skipped' ||
      (resource.action === 'configured' && before.action === 'created');
    return keepEarlier ? before : resource;
  });
  return [...merged, ...changedEarlier.values()];
}

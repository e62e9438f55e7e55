import type { ResourceResult } from '../status/job-record.js';

/** What an attempt changed, as opposed to what it found done or did not reach. */
const CHANGES: readonly ResourceResult['action'][] = ['created', 'configured', 'pruned'];

/** One object's identity across attempts (and in the record's `creating`). */
export function resourceKey(
  resource: Pick<ResourceResult, 'apiVersion' | 'kind' | 'namespace' | 'name'>,
): string {
  return `${resource.apiVersion}|${resource.kind}|${resource.namespace ?? ''}|${resource.name}`;
}

/**
 * The job's resources over all its attempts. A retry, or the worker that takes over from one
 * that died, finds what the earlier attempt wrote `unchanged` and what it pruned gone; the job
 * record is the audit trail, so each object keeps the change an earlier attempt made unless
 * this attempt's outcome says more (it changed or failed the object itself).
 * `creating` holds the objects earlier attempts were about to create (JobRecord.creating): one
 * this attempt finds in place, with no change on record, was created by an attempt killed
 * before it could record that.
 */
export function mergeAttemptResources(
  earlier: readonly ResourceResult[],
  current: readonly ResourceResult[],
  creating: ReadonlySet<string> = new Set(),
): ResourceResult[] {
  const changedEarlier = new Map(
    earlier
      .filter((resource) => CHANGES.includes(resource.action))
      .map((resource) => [resourceKey(resource), resource]),
  );
  const merged = current.map((resource) => {
    const key = resourceKey(resource);
    const before = changedEarlier.get(key);
    changedEarlier.delete(key);
    const foundInPlace = resource.action === 'unchanged' || resource.action === 'configured';
    if (!before)
      return foundInPlace && creating.has(key) ? { ...resource, action: 'created' as const } : resource;
    const keepEarlier =
      resource.action === 'unchanged' ||
      resource.action === 'skipped' ||
      (resource.action === 'configured' && before.action === 'created');
    return keepEarlier ? before : resource;
  });
  return [...merged, ...changedEarlier.values()];
}

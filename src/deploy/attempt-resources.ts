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
 * before it could record that; one this attempt did not reach may have been.
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
    if (!before) {
      if (!creating.has(key)) return resource;
      if (resource.action === 'unchanged' || resource.action === 'configured')
        return { ...resource, action: 'created' as const };
      return resource.action === 'skipped' ? { ...resource, message: MAYBE_CREATED } : resource;
    }
    const keepEarlier =
      resource.action === 'unchanged' ||
      resource.action === 'skipped' ||
      (resource.action === 'configured' && before.action === 'created');
    return keepEarlier ? before : resource;
  });
  return [...merged, ...changedEarlier.values()];
}

/** Said of an object a killed worker was about to create, where no later attempt settled it. */
export const MAYBE_CREATED =
  "not applied by this attempt; an earlier attempt's worker was killed while creating objects, and this one may exist";

/**
 * The resources of a job that ends with no attempt after a killed one (it stalled too often):
 * what that attempt was about to create and did not record may exist now, and says so.
 */
export function withUnsettledCreates(
  resources: readonly ResourceResult[],
  creating: readonly string[],
): ResourceResult[] {
  const unsettled = new Set(creating);
  const marked = resources.map((resource) => {
    const key = resourceKey(resource);
    if (!unsettled.delete(key) || resource.action !== 'skipped') return resource;
    return { ...resource, message: MAYBE_CREATED };
  });
  // Not listed at all: the worker was killed before its first progress write.
  for (const key of unsettled) {
    const [apiVersion = '', kind = '', namespace = '', name = ''] = key.split('|');
    marked.push({
      apiVersion,
      kind,
      ...(namespace ? { namespace } : {}),
      name,
      action: 'skipped',
      message: MAYBE_CREATED,
    });
  }
  return marked;
}

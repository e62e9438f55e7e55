import type { JobRecord, ResourceResult } from '../status/job-record.js';

/** What an attempt changed, as opposed to what it found done or did not reach. */
const CHANGES: readonly ResourceResult['action'][] = ['created', 'configured', 'pruned'];

/** One object's identity across attempts (and in the record's `creating` and `configuring`). */
export function resourceKey(
  resource: Pick<ResourceResult, 'apiVersion' | 'kind' | 'namespace' | 'name'>,
): string {
  return `${resource.apiVersion}|${resource.kind}|${resource.namespace ?? ''}|${resource.name}`;
}

/**
 * What earlier attempts were about to write (JobRecord.creating and .configuring), each object
 * by its resourceKey: written before the writes, where their outcomes reach the record at most
 * once a second, or not at all when the attempt's answers were lost.
 */
export interface AttemptIntents {
  creating: ReadonlySet<string>;
  configuring: ReadonlySet<string>;
  /**
   * Another job's deploy of the environment ran since (JobStore.recordDeployStarting): an object
   * found as git has it may be that deploy's work, so it is not listed as this job's change.
   */
  uncertain?: boolean;
}

export const NO_INTENTS: AttemptIntents = { creating: new Set(), configuring: new Set() };

export function intentsOf(record: Pick<JobRecord, 'creating' | 'configuring'>): AttemptIntents {
  return { creating: new Set(record.creating), configuring: new Set(record.configuring) };
}

/**
 * The job's resources over all its attempts. A retry, or the worker that takes over from one
 * that died, finds what the earlier attempt wrote `unchanged` and what it pruned gone; the job
 * record is the audit trail, so each object keeps the change an earlier attempt made unless
 * this attempt's outcome says more (it changed or failed the object itself).
 * `intents` hold the objects earlier attempts were about to create or configure: one this
 * attempt finds as git has it, with no change on record, was written by an attempt that could
 * not record that (killed, or its answer lost); one this attempt did not reach may have been.
 */
export function mergeAttemptResources(
  earlier: readonly ResourceResult[],
  current: readonly ResourceResult[],
  intents: AttemptIntents = NO_INTENTS,
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
    if (!before) return withIntent(resource, key, intents);
    const keepEarlier =
      resource.action === 'unchanged' ||
      resource.action === 'skipped' ||
      (resource.action === 'configured' && before.action === 'created');
    return keepEarlier ? before : resource;
  });
  return [...merged, ...changedEarlier.values()];
}

function withIntent(resource: ResourceResult, key: string, intents: AttemptIntents): ResourceResult {
  const creating = intents.creating.has(key);
  if (!creating && !intents.configuring.has(key)) return resource;
  if (resource.action === 'skipped')
    return { ...resource, message: creating ? MAYBE_CREATED : MAYBE_CONFIGURED };
  if (intents.uncertain) {
    return resource.action === 'unchanged' ? { ...resource, message: MAYBE_EARLIER_OR_OTHER } : resource;
  }
  if (resource.action === 'unchanged') return { ...resource, action: creating ? 'created' : 'configured' };
  return creating && resource.action === 'configured' ? { ...resource, action: 'created' } : resource;
}

/** Said of an object an earlier attempt was about to create, where no later attempt settled it. */
export const MAYBE_CREATED =
  'not applied by this attempt; an earlier attempt was about to create it and stopped before it could record whether it did, so it may exist';

/** Found as git has it, where an earlier attempt or another job's deploy since may have written it. */
export const MAYBE_EARLIER_OR_OTHER =
  'found as git has it; an earlier attempt of this job was about to write it and could not record whether it did, and another deploy of the environment ran since, so either may have';

/** Said of an object an earlier attempt was about to change, where no later attempt settled it. */
export const MAYBE_CONFIGURED =
  'not applied by this attempt; an earlier attempt was about to change it and stopped before it could record whether it did, so it may have changed';

/**
 * The resources of a job that ends with no attempt after one that stopped unrecorded (it
 * stalled too often, or failed before any write of its own): what that attempt was about to
 * write and did not record may have been written, and says so.
 */
export function withUnsettledWrites(
  resources: readonly ResourceResult[],
  intents: Pick<JobRecord, 'creating' | 'configuring'>,
): ResourceResult[] {
  const unsettled = new Map<string, string>();
  for (const key of intents.configuring ?? []) unsettled.set(key, MAYBE_CONFIGURED);
  for (const key of intents.creating ?? []) unsettled.set(key, MAYBE_CREATED);
  const marked = resources.map((resource) => {
    const key = resourceKey(resource);
    const message = unsettled.get(key);
    unsettled.delete(key);
    return message === undefined || resource.action !== 'skipped' ? resource : { ...resource, message };
  });
  // Not listed at all: the worker was killed before its first progress write.
  for (const [key, message] of unsettled) {
    const [apiVersion = '', kind = '', namespace = '', name = ''] = key.split('|');
    marked.push({ apiVersion, kind, ...(namespace ? { namespace } : {}), name, action: 'skipped', message });
  }
  return marked;
}

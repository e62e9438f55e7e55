import type { EnvironmentConfig } from '../config/schema.js';
import { errorMessage } from '../lib/errors.js';
import { compareApplyOrder, groupByRank } from '../manifests/order.js';
import { isNamespaceRef } from '../manifests/policy.js';
import { ENVIRONMENT_LABEL } from '../manifests/prepare.js';
import { describeRef, type ResourceInfo } from '../manifests/resource-info.js';
import type { ObjectRef } from '../manifests/types.js';
import type { ResourceResult } from '../status/job-record.js';
import type { ClusterClient, LiveObject } from './cluster.js';
import { KubeApiError } from './api-error.js';
import { finalizersOf } from './being-deleted.js';
import { mapWithConcurrency } from './map-with-concurrency.js';
import { CONCURRENCY } from './plan.js';
import { pruneProtection } from './prune-protection.js';

export interface PruneFailure {
  ref: ObjectRef;
  message: string;
  permanent: boolean;
}

export interface PruneResult {
  results: ResourceResult[];
  /** Still in the cluster and still ours: kept in the inventory for the next deploy. */
  failures: PruneFailure[];
  /** Of those given as held: to be deleted but for that, kept (`skipped`), and still ours. */
  held: ObjectRef[];
}

function result(ref: ObjectRef, action: ResourceResult['action'], message?: string): ResourceResult {
  const entry: ResourceResult = { apiVersion: ref.apiVersion, kind: ref.kind, name: ref.name, action };
  if (ref.namespace !== undefined) entry.namespace = ref.namespace;
  if (message !== undefined) entry.message = message;
  return entry;
}

/**
 * Deletes what an earlier deploy applied and the current set no longer has, in reverse
 * apply order (workloads before their Services, custom resources before their CRDs,
 * Namespaces last). An object is only deleted while it still carries this environment's
 * label and is not annotated `pushgate.dev/prune: disabled` (or Flux's or Argo CD's like marker,
 * prune-protection.ts); otherwise it is left in place (`skipped`) and forgotten, an annotated one
 * also losing the label. Already gone counts as pruned.
 *
 * `assertLockHeld` runs before every delete; when it throws, the prune stops (after the
 * deletes already started) and its error is re-thrown rather than counted as a failed delete.
 */
export async function pruneObjects(
  client: ClusterClient,
  environment: Pick<EnvironmentConfig, 'name' | 'namespace'>,
  stale: readonly ObjectRef[],
  assertLockHeld: () => Promise<void>,
  signal?: AbortSignal,
  /** Objects not to delete, each with why: kept when they would be, released all the same. */
  holds: ReadonlyMap<ObjectRef, string> = new Map(),
): Promise<PruneResult> {
  const results: ResourceResult[] = [];
  const failures: PruneFailure[] = [];
  const held: ObjectRef[] = [];
  let lockLost: { error: unknown } | undefined;
  const checkLock = (): Promise<void> =>
    assertLockHeld().catch((error: unknown) => {
      lockLost ??= { error };
      throw error;
    });
  const reversed = [...stale].sort((a, b) => compareApplyOrder(b, a));
  for (const group of groupByRank(reversed)) {
    const outcomes = await mapWithConcurrency(group, CONCURRENCY, async (ref) => {
      try {
        return await pruneOne(client, environment, ref, checkLock, signal, holds.get(ref), () =>
          held.push(ref),
        );
      } catch (error) {
        signal?.throwIfAborted();
        if (lockLost) throw lockLost.error;
        const status =
          error instanceof KubeApiError && error.status !== undefined ? ` (HTTP ${error.status})` : '';
        // A 401 is credentials mid-rotation or wrong ones, as for an apply (failures.ts).
        const permanent = error instanceof KubeApiError ? !error.transient && error.status !== 401 : true;
        const message = `delete failed${status}: ${errorMessage(error)}`;
        failures.push({ ref, message: `${describeRef(ref)}: ${message}`, permanent });
        return result(ref, 'failed', message);
      }
    });
    results.push(...outcomes);
  }
  return { results, failures, held };
}

/** What prune would do with one stale object, read from the cluster; nothing is written. */
export type PruneVerdict =
  | { verdict: 'gone'; message?: string }
  | { verdict: 'kept'; message: string }
  | { verdict: 'released'; message: string; resource: ResourceInfo; live: LiveObject }
  | { verdict: 'delete'; resource: ResourceInfo; live: LiveObject };

/**
 * Whether a stale object goes: not one no longer served or already gone, nor the namespace
 * holding the inventory, nor one that no longer carries this environment's label; one
 * annotated to stay (`pushgate.dev/prune: disabled`, or Flux's or Argo CD's marker) is released
 * (its label removed) instead.
 */
export async function pruneVerdict(
  client: ClusterClient,
  environment: Pick<EnvironmentConfig, 'name' | 'namespace'>,
  ref: ObjectRef,
  signal?: AbortSignal,
): Promise<PruneVerdict> {
  const resource = await client.resolveInAnyVersion(ref.apiVersion, ref.kind, signal);
  if (!resource)
    return {
      verdict: 'gone',
      message: `${ref.apiVersion} ${ref.kind} is no longer served; nothing to delete`,
    };
  if (isNamespaceRef(ref) && ref.name === environment.namespace) {
    return { verdict: 'kept', message: `holds the inventory of environment ${environment.name}; not pruned` };
  }
  const live = await client.get(resource, ref.namespace, ref.name, signal);
  if (!live) return { verdict: 'gone', message: 'already gone' };
  const owner = live.metadata.labels?.[ENVIRONMENT_LABEL];
  if (owner !== environment.name) {
    const why =
      owner === undefined
        ? `it no longer carries ${ENVIRONMENT_LABEL}=${environment.name}`
        : `it is labelled ${ENVIRONMENT_LABEL}=${owner}, not ${environment.name}`;
    return { verdict: 'kept', message: `not pruned: ${why}` };
  }
  const protection = pruneProtection(live.metadata.annotations);
  if (protection !== undefined)
    return { verdict: 'released', message: `not pruned: ${protection}`, resource, live };
  return { verdict: 'delete', resource, live };
}

async function pruneOne(
  client: ClusterClient,
  environment: Pick<EnvironmentConfig, 'name' | 'namespace'>,
  ref: ObjectRef,
  assertLockHeld: () => Promise<void>,
  signal?: AbortSignal,
  hold?: string,
  onHeld?: () => void,
): Promise<ResourceResult> {
  const found = await pruneVerdict(client, environment, ref, signal);
  if (found.verdict === 'delete' && hold !== undefined) {
    onHeld?.();
    return result(ref, 'skipped', hold);
  }
  if (found.verdict === 'gone') return result(ref, 'pruned', found.message);
  if (found.verdict === 'kept') return result(ref, 'skipped', found.message);
  const { resource, live } = found;
  if (found.verdict === 'released') {
    // Forgotten by the inventory, it is released too: another environment may declare it.
    await assertLockHeld();
    try {
      await client.removeLabel(resource, live, { name: ENVIRONMENT_LABEL, value: environment.name }, signal);
    } catch (error) {
      signal?.throwIfAborted();
      return result(
        ref,
        'skipped',
        `${found.message}; its label ${ENVIRONMENT_LABEL} could not be removed: ${errorMessage(error)}`,
      );
    }
    return result(ref, 'skipped', `${found.message}; released (label ${ENVIRONMENT_LABEL} removed)`);
  }
  await assertLockHeld();
  await client.delete(resource, ref.namespace, ref.name, live.metadata.uid, signal);
  // Deleted, but still there until its finalizers finish (a PVC in use, a custom resource
  // whose controller cleans up): a revert meanwhile cannot bring it back.
  const finalizers = finalizersOf(live);
  return finalizers.length > 0
    ? result(ref, 'pruned', `deleted; it goes once its finalizers finish (${finalizers.join(', ')})`)
    : result(ref, 'pruned');
}

import { errorMessage } from '../lib/errors.js';
import { isNamespaceRef } from '../manifests/policy.js';
import { splitApiVersion, type ResourceInfo } from '../manifests/resource-info.js';
import type { ObjectRef } from '../manifests/types.js';
import type { ClusterClient } from './cluster.js';
import { otherInventories } from './inventory.js';

/** CustomResourceDefinitions, for ClusterClient reads. */
export const CRDS: ResourceInfo = {
  group: 'apiextensions.k8s.io',
  version: 'v1',
  kind: 'CustomResourceDefinition',
  plural: 'customresourcedefinitions',
  namespaced: false,
};

function isCrd(ref: ObjectRef): boolean {
  return ref.kind === 'CustomResourceDefinition' && splitApiVersion(ref.apiVersion).group === CRDS.group;
}

/**
 * Stale Namespaces and CRDs that objects of *other* environments live in or are instances of,
 * by their inventories: deleting one would delete what another environment declares (the
 * namespace controller, the CRD's finalizer). When the inventories cannot be read (RBAC
 * without a cluster-wide list of ConfigMaps), every such candidate is kept: a delete that
 * cannot be checked is not made.
 */
export async function keptForOtherEnvironments(
  client: ClusterClient,
  environment: string,
  stale: readonly ObjectRef[],
  signal?: AbortSignal,
  installation?: string,
): Promise<Map<ObjectRef, string>> {
  const candidates = stale.filter((ref) => isNamespaceRef(ref) || isCrd(ref));
  const kept = new Map<ObjectRef, string>();
  if (candidates.length === 0) return kept;
  let others: Awaited<ReturnType<typeof otherInventories>>;
  try {
    others = await otherInventories(client, environment, signal, installation);
  } catch (error) {
    const why = `not pruned: could not check that no other environment has objects in or of it (${errorMessage(error)})`;
    for (const ref of candidates) kept.set(ref, why);
    return kept;
  }
  // An inventory that cannot be read may list objects in or of any of them: deleting one
  // could delete what another environment declares.
  const [unreadable] = others.unreadable.keys();
  if (unreadable !== undefined) {
    const why =
      `not pruned: the inventory of environment ${unreadable} cannot be read, so whether it has objects in or of ` +
      `it is unknown (${others.unreadable.get(unreadable) ?? ''})`;
    for (const ref of candidates) kept.set(ref, why);
    return kept;
  }
  for (const ref of candidates) {
    let kind: string | undefined;
    let group: string | undefined;
    if (isCrd(ref)) {
      const crd = await client.get(CRDS, undefined, ref.name, signal);
      const spec = (crd?.spec ?? {}) as { group?: unknown; names?: { kind?: unknown } };
      if (typeof spec.group !== 'string' || typeof spec.names?.kind !== 'string') continue;
      [group, kind] = [spec.group, spec.names.kind];
    }
    for (const [owner, inventory] of others.byOwner) {
      const holds = inventory.objects.some((object) =>
        isNamespaceRef(ref)
          ? object.namespace === ref.name
          : object.kind === kind && splitApiVersion(object.apiVersion).group === group,
      );
      // The namespace of its inventory too: deleting it deletes the record of what to prune.
      const home = isNamespaceRef(ref) && inventory.home === ref.name;
      if (!holds && !home) continue;
      kept.set(
        ref,
        !holds
          ? `not pruned: it holds the inventory of environment ${owner} (deleting it would leave what that lists unprunable)`
          : isNamespaceRef(ref)
            ? `not pruned: environment ${owner} has objects in it (deleting it would delete them)`
            : `not pruned: environment ${owner} has objects of its kind (deleting it would delete them)`,
      );
      break;
    }
  }
  return kept;
}

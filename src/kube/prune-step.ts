import type { EnvironmentConfig } from '../config/schema.js';
import { counted } from '../lib/counted.js';
import { errorMessage } from '../lib/errors.js';
import { matchAnyGlob } from '../manifests/glob.js';
import { applyStage } from '../manifests/order.js';
import { isNamespaceRef } from '../manifests/policy.js';
import type { PreparedObject } from '../manifests/prepare.js';
import { formatProblems } from '../manifests/problems.js';
import type { ObjectRef } from '../manifests/types.js';
import { describeRef, splitApiVersion, type ResourceInfo } from '../manifests/resource-info.js';
import type { ClusterClient } from './cluster.js';
import { resultOf, type Results } from './deploy-results.js';
import { deleteInventory, refKey, sameRefs, type Inventory, type InventoriesLeft } from './inventory.js';
import { pruneObjects } from './prune.js';
import { mapWithConcurrency } from './map-with-concurrency.js';
import { CONCURRENCY } from './plan.js';
import { keptForOtherEnvironments } from './shared-containers.js';
import { DeployError, type DeployRequest } from './types.js';

/**
 * Stale objects prune must leave, each with why; they stay in the inventory until that
 * changes. A Namespace that objects of the set still live in, or a CRD that objects of the set
 * are instances of: deleting one deletes those objects too (the namespace controller, the
 * CRD's own finalizer), although git still declares them. And anything outside what the
 * environment may write now (allow narrowed since it was applied): a delete is a write.
 */
export function keptFromPrune(
  stale: readonly ObjectRef[],
  ordered: readonly PreparedObject[],
  environment: Pick<EnvironmentConfig, 'name' | 'allow'>,
): Map<ObjectRef, string> {
  const namespaces = new Set(ordered.map((object) => object.ref.namespace));
  // A CRD's name is always <plural>.<group>.
  const crds = new Set(
    ordered
      .filter((object) => object.resource.group !== '')
      .map((object) => `${object.resource.plural}.${object.resource.group}`),
  );
  const kept = new Map<ObjectRef, string>();
  for (const ref of stale) {
    // A Namespace by its own name too, as the policy holds it: deleting one deletes all it holds.
    const outside =
      ref.namespace === undefined
        ? (!environment.allow.clusterScoped && 'it is cluster-scoped and allow.clusterScoped is false') ||
          (isNamespaceRef(ref) &&
            !matchAnyGlob(environment.allow.namespaces, ref.name) &&
            `namespace "${ref.name}" is not in allow.namespaces`)
        : !matchAnyGlob(environment.allow.namespaces, ref.namespace) &&
          `namespace "${ref.namespace}" is not in allow.namespaces`;
    if (outside) {
      kept.set(ref, `not pruned: ${outside} for environment ${environment.name}`);
      continue;
    }
    if (applyStage(ref.apiVersion, ref.kind) !== 1) continue;
    if (ref.kind === 'Namespace' && namespaces.has(ref.name))
      kept.set(ref, 'not pruned: objects of this deploy are in it (deleting it would delete them)');
    if (ref.kind === 'CustomResourceDefinition' && crds.has(ref.name))
      kept.set(ref, 'not pruned: objects of this deploy are of its kind (deleting it would delete them)');
  }
  return kept;
}

/**
 * The stale refs that name an object of `ordered` under another API group (an Event as `v1`,
 * then as `events.k8s.io/v1`; an Ingress moved from `extensions` to `networking.k8s.io`): the
 * same object, by its uid, which prune deleted right after applying it. Only a ref sharing
 * kind, namespace and name with an applied object is read; one that cannot be read is kept
 * (`unchecked`, with why), not pruned: it may be the object just applied.
 */
export async function appliedUnderAnotherGroup(
  client: ClusterClient,
  stale: readonly ObjectRef[],
  ordered: readonly PreparedObject[],
  signal?: AbortSignal,
): Promise<{ same: Set<ObjectRef>; unchecked: Map<ObjectRef, string> }> {
  const applied = new Map(
    ordered.map((object) => [`${object.ref.kind}|${object.ref.namespace ?? ''}|${object.ref.name}`, object]),
  );
  const twins = stale.flatMap((ref) => {
    const twin = applied.get(`${ref.kind}|${ref.namespace ?? ''}|${ref.name}`);
    return twin ? [{ ref, twin }] : [];
  });
  const same = new Set<ObjectRef>();
  const unchecked = new Map<ObjectRef, string>();
  await mapWithConcurrency(twins, CONCURRENCY, async ({ ref, twin }) => {
    try {
      const resource = await client.resolveInAnyVersion(ref.apiVersion, ref.kind, signal);
      if (!resource) return;
      const [before, now] = await Promise.all([
        client.get(resource, ref.namespace, ref.name, signal),
        client.get(twin.resource, twin.ref.namespace, twin.ref.name, signal),
      ]);
      const uid = before?.metadata.uid;
      if (uid !== undefined && uid === now?.metadata.uid) same.add(ref);
    } catch (error) {
      signal?.throwIfAborted();
      unchecked.set(
        ref,
        `not pruned: whether it is ${describeRef(twin.ref)}, applied now under another API group, could not be checked (${errorMessage(error)})`,
      );
    }
  });
  return { same, unchecked };
}

/**
 * The stale Namespaces and CRDs among `containers` that hold an object of `left` (stale objects
 * prune keeps, releases or failed to delete): deleting one would delete those too. Kept, each
 * saying why, with what holds it (`holders`), which stays listed beside it: forgotten, the
 * container would be pruned by the next deploy with what it holds.
 */
export async function containersOf(
  client: ClusterClient,
  left: readonly ObjectRef[],
  containers: readonly ObjectRef[],
  signal?: AbortSignal,
): Promise<Map<ObjectRef, { why: string; holders: ObjectRef[] }>> {
  const held = new Map<string, ObjectRef[]>();
  const hold = (key: string, ref: ObjectRef): void => {
    held.set(key, [...(held.get(key) ?? []), ref]);
  };
  const crdsStale = containers.some((container) => !isNamespaceRef(container));
  const kinds = new Map<string, Promise<ResourceInfo | undefined>>();
  let unresolved: { ref: ObjectRef; error: unknown } | undefined;
  for (const ref of left) {
    if (ref.namespace !== undefined) hold(`Namespace ${ref.namespace}`, ref);
    if (!crdsStale || !splitApiVersion(ref.apiVersion).group) continue;
    // A CRD's name is <plural>.<group>; a kind no longer served has nothing left to protect.
    const kind = `${ref.apiVersion} ${ref.kind}`;
    if (!kinds.has(kind)) kinds.set(kind, client.resolveInAnyVersion(ref.apiVersion, ref.kind, signal));
    try {
      const resource = await kinds.get(kind);
      if (resource) hold(`CustomResourceDefinition ${resource.plural}.${resource.group}`, ref);
    } catch (error) {
      signal?.throwIfAborted();
      unresolved ??= { ref, error };
    }
  }
  const kept = new Map<ObjectRef, { why: string; holders: ObjectRef[] }>();
  for (const container of containers) {
    const namespace = isNamespaceRef(container);
    const refs = held.get(`${namespace ? 'Namespace' : 'CustomResourceDefinition'} ${container.name}`);
    if (refs) {
      kept.set(container, {
        why: `not pruned: ${describeRef(refs[0]!)}, which prune left in place, is ${namespace ? 'in it' : 'of its kind'} (deleting it would delete that too)`,
        holders: refs,
      });
    } else if (!namespace && unresolved) {
      // Unknown whether it is one of those: a delete that cannot be checked is not made.
      kept.set(container, {
        why: `not pruned: whether ${describeRef(unresolved.ref)}, which prune left in place, is of its kind could not be checked (${errorMessage(unresolved.error)})`,
        holders: [],
      });
    }
  }
  return kept;
}

/**
 * The inventory first grows to old ∪ new (so a crash mid-prune forgets nothing), then the
 * stale objects are pruned, then it becomes the new set plus whatever failed to delete or is
 * must stay (keptFromPrune).
 * Prune failures fail the job (after the inventory is correct), so they are seen and retried.
 */
export async function recordAndPrune(
  client: ClusterClient,
  request: DeployRequest,
  ordered: readonly PreparedObject[],
  inventories: {
    previous: Inventory | undefined;
    left: InventoriesLeft;
    writeHome: (inventory: Inventory) => Promise<void>;
  },
  results: Results,
  progress: (message: string, details?: Record<string, unknown>) => void,
  /** The results so far to the job record (ProgressWrites.now). */
  recordResults: () => Promise<void> = () => Promise.resolve(),
): Promise<void> {
  const { environment, sha, signal } = request;
  const { previous, left, writeHome } = inventories;
  // Once the inventory in the environment's namespace covers what they listed; a namespace
  // whose inventory cannot be read stays on record.
  const retireElsewhere = async (): Promise<void> => {
    for (const found of left.found) {
      await request.assertLockHeld();
      await deleteInventory(client, environment.name, found, signal);
    }
    for (const namespace of request.inventoryHomes?.recorded ?? []) {
      if (namespace !== environment.namespace && !left.unreadable.includes(namespace))
        await request.inventoryHomes?.remove(namespace);
    }
  };
  const current = ordered.map((object) => object.ref);
  const currentKeys = new Set(current.map(refKey));
  const dropped = environment.prune ? droppedFromGit(previous, currentKeys) : [];
  const renamed = await appliedUnderAnotherGroup(client, dropped, ordered, signal);
  const stale = dropped.filter((ref) => !renamed.same.has(ref));

  if (stale.length > 0) {
    await request.assertLockHeld();
    await writeHome({ revision: sha, objects: [...current, ...stale] });
    const needed = keptFromPrune(stale, ordered, environment);
    for (const [ref, why] of renamed.unchecked) if (!needed.has(ref)) needed.set(ref, why);
    const elsewhere = await keptForOtherEnvironments(
      client,
      environment.name,
      stale.filter((ref) => !needed.has(ref)),
      signal,
      request.installation,
    );
    for (const [ref, why] of elsewhere) needed.set(ref, why);
    const isContainer = (ref: ObjectRef): boolean => applyStage(ref.apiVersion, ref.kind) === 1;
    const contents = await pruneObjects(
      client,
      environment,
      stale.filter((ref) => !needed.has(ref) && !isContainer(ref)),
      request.assertLockHeld,
      signal,
    );
    // Namespaces and CRDs go last, and only once what prune leaves of them is gone as well.
    // The stale refs themselves: a result carries its action and message beside the ref.
    const byKey = new Map(stale.map((ref) => [refKey(ref), ref]));
    const leftInPlace = [
      ...needed.keys(),
      ...contents.results
        .filter((result) => result.action !== 'pruned')
        .flatMap((result) => byKey.get(refKey(result)) ?? []),
    ];
    // Held, one is still judged first: annotated to stay, it is released, not kept.
    const held = await containersOf(client, leftInPlace, stale.filter(isContainer), signal);
    const containers = await pruneObjects(
      client,
      environment,
      stale.filter((ref) => !needed.has(ref) && isContainer(ref)),
      request.assertLockHeld,
      signal,
      new Map([...held].map(([ref, { why }]) => [ref, why])),
    );
    // What holds a kept one stays listed with it: forgotten, the next deploy would prune it.
    const holders = containers.held.flatMap((ref) => held.get(ref)?.holders ?? []);
    const pruned = {
      results: [...contents.results, ...containers.results],
      failures: [...contents.failures, ...containers.failures],
    };
    results.extra.push(...pruned.results);
    for (const [ref, why] of needed) results.extra.push(resultOf(ref, 'skipped', why));
    const kept = [
      ...new Set([
        ...needed.keys(),
        ...pruned.failures.map((failure) => failure.ref),
        ...containers.held,
        ...holders,
      ]),
    ];
    // On the job's record before the inventory forgets them: an attempt that takes over after
    // that finds nothing stale, and would otherwise never say they were pruned.
    await recordResults();
    await request.assertLockHeld();
    await writeHome({ revision: sha, objects: [...current, ...kept] });
    await retireElsewhere();
    progress(
      `pruned: ${pruned.results.filter((r) => r.action === 'pruned').length} of ${counted(stale.length, 'stale object')}`,
    );
    if (pruned.failures.length > 0) {
      const lines = formatProblems(pruned.failures, 'objects could not be pruned');
      throw new DeployError(
        'apply_rejected',
        `prune failed (kept in the inventory for the next deploy): ${lines}`,
        {
          permanent: pruned.failures.every((failure) => failure.permanent),
          resources: results.list(),
        },
      );
    }
    return;
  }
  // With prune off, what git dropped stays listed (as Argo CD keeps it tracked): turning prune
  // on again deletes it, where forgotten it would stay labelled as the environment's for good.
  const listed = environment.prune ? current : [...current, ...droppedFromGit(previous, currentKeys)];
  const unchanged = previous && previous.revision === sha && sameRefs(previous.objects, listed);
  if (!unchanged || left.found.length > 0) {
    await request.assertLockHeld();
    await writeHome({ revision: sha, objects: listed });
  }
  await retireElsewhere();
}

function droppedFromGit(previous: Inventory | undefined, currentKeys: ReadonlySet<string>): ObjectRef[] {
  return (previous?.objects ?? []).filter((ref) => !currentKeys.has(refKey(ref)));
}

import { errorMessage } from '../lib/errors.js';
import { applyStage, compareApplyOrder } from '../manifests/order.js';
import type { PreparedObject } from '../manifests/prepare.js';
import type { ManifestObject, ObjectRef } from '../manifests/types.js';
import type { ClusterClient, LiveObject } from './cluster.js';
import { jsonEqual, withoutServerFields } from './compare.js';
import { assertSetFits } from './deploy-inventory.js';
import { withoutFields } from './field-set-removal.js';
import { holdsHandMadeFields, takeoverRemoval } from './field-takeover.js';
import { Results } from './deploy-results.js';
import { dryRunBeforeWrites, standInNamespace } from './dry-run-set.js';
import { failuresError, type ObjectFailure } from './failures.js';
import { inventoryNamespaceExists, readInventory, refKey, type Inventory } from './inventory.js';
import { appliedUnderAnotherGroup, containersOf, keptFromPrune } from './prune-step.js';
import { pruneVerdict, type PruneVerdict } from './prune.js';
import type { RenderRequest } from './render.js';
import { keptForOtherEnvironments } from './shared-containers.js';
import { validateForDeploy } from './validate-set.js';

/** What a deploy would do to one object. */
export interface ObjectChange {
  ref: ObjectRef;
  action: 'create' | 'change' | 'replace' | 'delete';
  /** The object as the cluster holds it now, without the server's own fields; none for a create. */
  before?: ManifestObject;
  /** The object as the deploy would leave it (the server's dry-run); none for a delete. */
  after?: ManifestObject;
  /** Why it is shown as it is, when the comparison is not the server's dry-run of it. */
  note?: string;
}

export interface ClusterDiff {
  /** In apply order; deletes last, in the order prune deletes them. */
  changes: ObjectChange[];
  /** Objects of the commit a deploy would leave as they are. */
  unchanged: number;
  /** Objects of the commit that cannot be compared before a deploy, and why. */
  notCompared: { ref: ObjectRef; why: string }[];
  /** Objects the commit no longer has that prune would leave in the cluster, and why. */
  keptFromPrune: { ref: ObjectRef; why: string }[];
}

/**
 * What a deploy of the manifests would change in the environment's cluster, found as the
 * deploy finds it before its first write (validation, policy, the inventory's limits,
 * server-side dry-run, the inventory for prune): each object's live copy beside its dry-run
 * result, less the fields set by hand (kubectl) that the deploy takes over and git does not
 * declare. Nothing is written.
 */
export async function diffAgainstCluster(
  client: ClusterClient,
  request: RenderRequest,
): Promise<ClusterDiff> {
  const { environment, signal } = request;
  const objects = await validateForDeploy(client, request);
  const [home, namespaceExists] = await Promise.all([
    readInventory(client, environment, signal),
    inventoryNamespaceExists(client, environment, signal).catch(() => false),
  ]);
  assertSetFits(environment, home, objects);
  const compared = new Map<PreparedObject, { live: LiveObject | undefined; dryRun: LiveObject }>();
  const plan = await dryRunBeforeWrites(
    client,
    objects,
    standInNamespace(environment, namespaceExists),
    signal,
    undefined,
    (object, live, dryRun) => compared.set(object, { live, dryRun }),
  );
  const diff: ClusterDiff = { changes: [], unchanged: 0, notCompared: [], keptFromPrune: [] };
  const refused = await refusedWithoutTakeover(client, plan.failures, diff, signal);
  if (refused.length > 0) {
    const results = new Results(plan.ordered, 'not applied: dry-run of the set failed');
    results.fail(refused);
    throw failuresError(refused, 'server-side dry-run rejected the set', results.list());
  }
  const notCompared = new Set(plan.failures.map((failure) => failure.object));
  for (const object of plan.ordered) {
    const { ref } = object;
    if (notCompared.has(object)) continue;
    if (plan.deferred.has(object)) {
      await addDeferred(client, object, diff, signal);
      continue;
    }
    const planned = plan.plannedBy.get(object);
    const seen = compared.get(object);
    if (planned?.replace) {
      diff.changes.push({
        ref,
        action: 'replace',
        before: shown(planned.replace.live),
        after: shown(planned.replace.created),
        note: 'an immutable field changes and it is annotated pushgate.dev/force: deleted and created again',
      });
      continue;
    }
    if (planned?.createOnly) {
      diff.unchanged++;
      continue;
    }
    if (planned?.action === 'created' || !seen?.live) {
      diff.changes.push({ ref, action: 'create', after: shown(seen?.dryRun ?? object.object) });
      continue;
    }
    const removal = takeoverRemoval(seen.live, seen.dryRun, object.object.apiVersion);
    if (planned?.action === 'unchanged' && !removal) {
      diff.unchanged++;
      continue;
    }
    const after = shown(removal ? withoutFields(seen.dryRun, removal.fields) : seen.dryRun);
    const before = shown(seen.live);
    if (jsonEqual(before, after)) {
      diff.unchanged++;
      continue;
    }
    diff.changes.push({
      ref,
      action: 'change',
      before,
      after,
      ...(removal ? { note: removal.why } : {}),
    });
  }
  if (environment.prune) await addPrunes(client, request, home, plan.ordered, diff);
  return diff;
}

/**
 * The dry-run refusals a deploy would not stop at: an object holding fields set by hand
 * (kubectl) is dry-run again by a deploy once they are handed to pushgate, a write `diff` does
 * not make. Those are listed as not compared; the rest are returned.
 */
async function refusedWithoutTakeover(
  client: ClusterClient,
  failures: readonly ObjectFailure[],
  diff: ClusterDiff,
  signal: AbortSignal | undefined,
): Promise<ObjectFailure[]> {
  const refused: ObjectFailure[] = [];
  for (const failure of failures) {
    const { object } = failure;
    const live = await client
      .get(object.resource, object.ref.namespace, object.ref.name, signal)
      .catch(() => undefined);
    if (live && holdsHandMadeFields(live, object.object.apiVersion)) {
      diff.notCompared.push({
        ref: object.ref,
        why: `its dry-run is refused while fields set by hand (kubectl) are not pushgate's; a deploy hands them to pushgate and tries again (${failure.message})`,
      });
    } else {
      refused.push(failure);
    }
  }
  return refused;
}

/**
 * An object the server cannot dry-run before its Namespace or its kind's CRD, new or changed
 * in the same commit, is applied: a create when it does not exist (its manifest shown), else
 * not compared.
 */
async function addDeferred(
  client: ClusterClient,
  object: PreparedObject,
  diff: ClusterDiff,
  signal: AbortSignal | undefined,
): Promise<void> {
  const { ref } = object;
  const served = await client.resolveInAnyVersion(ref.apiVersion, ref.kind, signal);
  const live = served && (await client.get(served, ref.namespace, ref.name, signal));
  if (!live) {
    const note = 'its Namespace or CustomResourceDefinition comes with this commit (shown: the manifest)';
    diff.changes.push({ ref, action: 'create', after: object.object, note });
    return;
  }
  diff.notCompared.push({
    ref,
    why: 'its CustomResourceDefinition changes in this commit: the server can dry-run it only once that is applied',
  });
}

/** The objects of the inventory the commit no longer has: deleted by prune, or kept and why. */
async function addPrunes(
  client: ClusterClient,
  { environment, signal }: RenderRequest,
  home: Inventory | undefined,
  ordered: readonly PreparedObject[],
  diff: ClusterDiff,
): Promise<void> {
  const current = new Set(ordered.map((object) => refKey(object.ref)));
  const listed = (home?.objects ?? []).filter((ref) => !current.has(refKey(ref)));
  const renamed = await appliedUnderAnotherGroup(client, listed, ordered, signal);
  const stale = listed.filter((ref) => !renamed.same.has(ref));
  if (stale.length === 0) return;
  const kept = keptFromPrune(stale, ordered, environment);
  for (const [ref, why] of renamed.unchecked) if (!kept.has(ref)) kept.set(ref, why);
  const candidates = stale.filter((ref) => !kept.has(ref));
  // The installation that wrote the inventory: another's same-named environment counts as another.
  const others = await keptForOtherEnvironments(
    client,
    environment.name,
    candidates,
    signal,
    home?.installation,
  );
  for (const [ref, why] of others) kept.set(ref, why);
  for (const [ref, why] of kept) diff.keptFromPrune.push({ ref, why });
  // In the order prune deletes them: the reverse of the apply order, Namespaces and CRDs last,
  // each kept while what prune leaves of it stays.
  const isContainer = (ref: ObjectRef): boolean => applyStage(ref.apiVersion, ref.kind) === 1;
  const sorted = [...stale].sort((a, b) => compareApplyOrder(b, a));
  const left: ObjectRef[] = [...kept.keys()];
  for (const ref of sorted.filter((ref) => !isContainer(ref) && !kept.has(ref))) {
    const verdict = await diffPrune(client, environment, ref, diff, signal);
    if (verdict !== 'delete' && verdict !== 'gone') left.push(ref);
  }
  const containers = sorted.filter((ref) => isContainer(ref) && !kept.has(ref));
  const held = await containersOf(client, left, containers, signal);
  for (const ref of containers) await diffPrune(client, environment, ref, diff, signal, held.get(ref)?.why);
}

/** What prune would do with one stale object, added to `diff`. */
async function diffPrune(
  client: ClusterClient,
  environment: RenderRequest['environment'],
  ref: ObjectRef,
  diff: ClusterDiff,
  signal?: AbortSignal,
  /** Why it is kept should prune find it to delete (a Namespace what prune leaves is in). */
  hold?: string,
): Promise<PruneVerdict['verdict'] | 'unread'> {
  let verdict: PruneVerdict;
  try {
    verdict = await pruneVerdict(client, environment, ref, signal);
  } catch (error) {
    signal?.throwIfAborted();
    // As a deploy fails that one object's prune, not the others'.
    diff.notCompared.push({ ref, why: `not in the commit, and could not be read: ${errorMessage(error)}` });
    return 'unread';
  }
  if (verdict.verdict === 'delete' && hold !== undefined) diff.keptFromPrune.push({ ref, why: hold });
  else if (verdict.verdict === 'delete')
    diff.changes.push({ ref, action: 'delete', before: shown(verdict.live) });
  else if (verdict.verdict !== 'gone') diff.keptFromPrune.push({ ref, why: verdict.message });
  return verdict.verdict;
}

/** What a diff shows of an object: not what the server alone writes (status, managedFields, uid…). */
function shown(object: LiveObject | ManifestObject): ManifestObject {
  return withoutServerFields(object) as ManifestObject;
}

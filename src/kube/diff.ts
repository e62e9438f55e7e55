import { compareApplyOrder } from '../manifests/order.js';
import type { PreparedObject } from '../manifests/prepare.js';
import type { ManifestObject, ObjectRef } from '../manifests/types.js';
import type { ClusterClient, LiveObject } from './cluster.js';
import { withoutServerFields } from './compare.js';
import { Results } from './deploy-results.js';
import { dryRunBeforeWrites, standInNamespace } from './dry-run-set.js';
import { failuresError } from './failures.js';
import { inventoryNamespaceExists, readInventory, refKey } from './inventory.js';
import { keptFromPrune } from './prune-step.js';
import { pruneVerdict } from './prune.js';
import type { RenderRequest } from './render.js';
import { keptForOtherEnvironments } from './shared-containers.js';
import { validate } from './validate-set.js';

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
 * deploy finds it before its first write (validation, policy, server-side dry-run, the
 * inventory for prune): each object's live copy beside its dry-run result. Nothing is
 * written. Hand-made fields that make a dry-run fail are not taken over as a deploy would:
 * such an object fails here, as in `pushgate render`.
 */
export async function diffAgainstCluster(
  client: ClusterClient,
  request: RenderRequest,
): Promise<ClusterDiff> {
  const { environment, signal } = request;
  const objects = await validate(client, environment, request.manifests, signal);
  const namespaceExists = await inventoryNamespaceExists(client, environment, signal).catch(() => false);
  const compared = new Map<PreparedObject, { live: LiveObject | undefined; dryRun: LiveObject }>();
  const plan = await dryRunBeforeWrites(
    client,
    objects,
    standInNamespace(environment, namespaceExists),
    signal,
    undefined,
    (object, live, dryRun) => compared.set(object, { live, dryRun }),
  );
  if (plan.failures.length > 0) {
    const results = new Results(plan.ordered, 'not applied: dry-run of the set failed');
    results.fail(plan.failures);
    throw failuresError(plan.failures, 'server-side dry-run rejected the set', results.list());
  }
  const diff: ClusterDiff = { changes: [], unchanged: 0, notCompared: [], keptFromPrune: [] };
  for (const object of plan.ordered) {
    const { ref } = object;
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
        after: object.object,
        note: `an immutable field changes and it is annotated pushgate.dev/force: deleted and created again (shown: the manifest)`,
      });
    } else if (planned?.action === 'unchanged') {
      diff.unchanged++;
    } else if (planned?.action === 'created' || !seen?.live) {
      diff.changes.push({ ref, action: 'create', after: shown(seen?.dryRun ?? object.object) });
    } else {
      diff.changes.push({ ref, action: 'change', before: shown(seen.live), after: shown(seen.dryRun) });
    }
  }
  if (environment.prune) await addPrunes(client, request, plan.ordered, diff);
  return diff;
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
  ordered: readonly PreparedObject[],
  diff: ClusterDiff,
): Promise<void> {
  const inventory = await readInventory(client, environment, signal);
  const current = new Set(ordered.map((object) => refKey(object.ref)));
  const stale = (inventory?.objects ?? []).filter((ref) => !current.has(refKey(ref)));
  if (stale.length === 0) return;
  const kept = keptFromPrune(stale, ordered, environment);
  const candidates = stale.filter((ref) => !kept.has(ref));
  for (const [ref, why] of await keptForOtherEnvironments(client, environment.name, candidates, signal))
    kept.set(ref, why);
  for (const [ref, why] of kept) diff.keptFromPrune.push({ ref, why });
  // In the order prune deletes them: the reverse of the apply order.
  for (const ref of [...stale].sort((a, b) => compareApplyOrder(b, a))) {
    if (kept.has(ref)) continue;
    const verdict = await pruneVerdict(client, environment, ref, signal);
    if (verdict.verdict === 'delete')
      diff.changes.push({ ref, action: 'delete', before: shown(verdict.live) });
    else if (verdict.verdict !== 'gone') diff.keptFromPrune.push({ ref, why: verdict.message });
  }
}

/** What a diff shows of an object: not what the server alone writes (status, managedFields, uid…). */
function shown(object: LiveObject | ManifestObject): ManifestObject {
  return withoutServerFields(object) as ManifestObject;
}

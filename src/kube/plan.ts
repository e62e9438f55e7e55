import { ENVIRONMENT_LABEL, type PreparedObject } from '../manifests/prepare.js';
import type { ClusterClient, LiveObject } from './cluster.js';
import { BeingDeletedError } from './being-deleted.js';
import { jsonEqual, sameObject } from './compare.js';
import { dryRunTakingOver, takeOverHandManagedFields, type ManagedFieldsEntry } from './field-takeover.js';
import { createOnly } from './create-only.js';
import { checkReplacement, forceEnabled, isImmutableChange } from './force-replace.js';
import { objectFailure, type ObjectFailure } from './failures.js';
import { mapWithConcurrency, settleWithConcurrency } from './map-with-concurrency.js';
import { collectionPath } from './paths.js';
import {
  checkBindingBeforeItsRole,
  missingRoleMessage,
  roleAwaitedInSet,
  RoleNotYetCreatedError,
} from './role-bindings.js';

export type PlannedAction = 'created' | 'configured' | 'unchanged';

export interface PlannedObject {
  object: PreparedObject;
  action: PlannedAction;
  /** To be deleted and created again: a change of an immutable field, allowed by `pushgate.dev/force`. */
  replace?: { live: LiveObject; created: LiveObject };
  /** Fields hand-made managers own, to be handed to pushgate before the apply (field-takeover.ts). */
  takeover?: { live: LiveObject; managedFields: ManagedFieldsEntry[] };
  /** For a CustomResourceDefinition only: what the cluster serves now, and what this set would make of it. */
  crd?: { live: LiveObject | undefined; dryRun: LiveObject };
  /** Left as it is, though git differs: it exists and is annotated to be created only (create-only.ts); why. */
  createOnly?: string;
}

/**
 * Where planning may hand hand-made fields to pushgate to get past a refused dry-run
 * (dryRunTakingOver): a deploy, not a render. `undos` put the ownership back, for the objects
 * no apply has followed yet.
 */
export interface HandMadeRetry {
  /** The lock check, before the ownership write. */
  beforeWrite: () => Promise<void>;
  undos: Map<PreparedObject, () => Promise<void>>;
}

/** What planObjects compared for one object: its live copy (none yet) and its dry-run result. */
export type CompareObserver = (
  object: PreparedObject,
  live: LiveObject | undefined,
  dryRun: LiveObject,
) => void;

export interface PlanResult {
  planned: PlannedObject[];
  failures: ObjectFailure[];
}

/** Requests in flight per deploy: enough to hide round trips, few enough to be polite to the API server. */
export const CONCURRENCY = 32;
/**
 * From this many objects in one collection (kind + namespace), one paged LIST replaces
 * their GETs: a 1,000-ConfigMap set costs 1 read instead of 1,000.
 */
const LIST_THRESHOLD = 8;

/** The live objects of crowded collections, by collection path and name. */
export async function listCrowdedCollections(
  client: ClusterClient,
  objects: readonly PreparedObject[],
  signal?: AbortSignal,
  /** Only the objects carrying these labels (the health wait's, which applied them). */
  labelSelector?: string,
): Promise<Map<string, Map<string, LiveObject>>> {
  const counts = new Map<string, PreparedObject[]>();
  for (const object of objects) {
    const key = collectionPath(object.resource, object.ref.namespace);
    const group = counts.get(key) ?? [];
    group.push(object);
    counts.set(key, group);
  }
  const crowded = [...counts.entries()].filter(([, group]) => group.length >= LIST_THRESHOLD);
  const listed = await mapWithConcurrency(crowded, CONCURRENCY, async ([key, [first]]) => {
    const { resource, ref } = first as PreparedObject;
    // Without list permission (or on any trouble) the per-object GETs still work.
    const items = await client.list(resource, ref.namespace, signal, labelSelector).catch(() => undefined);
    return [key, items && new Map(items.map((item) => [item.metadata.name, item]))] as const;
  });
  return new Map(
    listed.filter((entry): entry is [string, Map<string, LiveObject>] => entry[1] !== undefined),
  );
}

/**
 * An object whose live copy is labelled as another environment's. Two environments that
 * both declare it would apply it in turn, each relabelling it, and the one that drops it
 * from git would delete what the other still declares: an object has one environment.
 */
export class OwnedElsewhereError extends Error {
  constructor(object: PreparedObject, owner: string) {
    const environment = object.object.metadata.labels?.[ENVIRONMENT_LABEL];
    super(
      `managed by environment ${owner} (label ${ENVIRONMENT_LABEL}=${owner}), not ${environment}: ` +
        `an object belongs to one environment (to hand it over: declare it here, relabel it ` +
        `pushgate.dev/environment=${environment}, then drop it from ${owner}'s branch; docs/deploys.md §4)`,
    );
    this.name = 'OwnedElsewhereError';
  }
}

/** Throws when the live object belongs to another environment (see OwnedElsewhereError). */
function checkOwner(object: PreparedObject, live: LiveObject | undefined): void {
  const owner = live?.metadata.labels?.[ENVIRONMENT_LABEL];
  const environment = object.object.metadata.labels?.[ENVIRONMENT_LABEL];
  if (owner && environment && owner !== environment) throw new OwnedElsewhereError(object, owner);
}

/**
 * Reads each object and server-side dry-runs it (in parallel, bounded), then classifies it:
 * absent → created; the dry-run result equal to the live object (server-managed fields
 * aside) → unchanged; else configured. Nothing is written.
 */
export async function planObjects(
  client: ClusterClient,
  objects: readonly PreparedObject[],
  signal?: AbortSignal,
  handMade?: HandMadeRetry,
  /** The whole set, when `objects` is part of it: what refusals may name. */
  set: readonly PreparedObject[] = objects,
  /** Shown each object's live copy and dry-run result as they are compared (`pushgate diff`). */
  observe?: CompareObserver,
): Promise<PlanResult> {
  const collections = await listCrowdedCollections(client, objects, signal);
  // A lost lock ends the deploy (another worker has it), not this object's plan.
  let lockLost: Error | undefined;
  const beforeWrite = async (): Promise<void> => {
    await handMade?.beforeWrite().catch((error: unknown) => {
      lockLost ??= error instanceof Error ? error : new Error(String(error));
      throw lockLost;
    });
  };
  const settled = await settleWithConcurrency(objects, CONCURRENCY, async (object) => {
    const { resource, ref } = object;
    const listed = collections.get(collectionPath(resource, ref.namespace));
    const [live, firstOutcome] = await Promise.all([
      listed ? listed.get(ref.name) : client.get(resource, ref.namespace, ref.name, signal),
      client.apply(resource, object.object, { dryRun: true, signal }).then(
        (result): { result: LiveObject } | { error: unknown } => ({ result }),
        (error: unknown) => ({ error }),
      ),
    ]);
    checkOwner(object, live);
    if (live?.metadata.deletionTimestamp) throw new BeingDeletedError(live);
    // Not written, so neither its dry-run nor what kubectl set on it matters.
    const kept = live && createOnly(object.object);
    if (kept) return { object, action: 'unchanged' as const, createOnly: kept };
    let dryRunOutcome = firstOutcome;
    if ('error' in dryRunOutcome && live && handMade) {
      const taken = await dryRunTakingOver(client, object, live, beforeWrite, signal);
      if (taken) {
        dryRunOutcome = { result: taken.result };
        handMade.undos.set(object, taken.undo);
      }
    }
    if ('error' in dryRunOutcome) {
      const role = live ? undefined : roleAwaitedInSet(object, dryRunOutcome.error, objects);
      if (role) throw new RoleNotYetCreatedError(role, dryRunOutcome.error);
      const missingRole = missingRoleMessage(object, dryRunOutcome.error, set);
      if (missingRole) throw new Error(missingRole, { cause: dryRunOutcome.error });
      if (!live || !forceEnabled(object.object) || !isImmutableChange(dryRunOutcome.error))
        throw dryRunOutcome.error;
      const created = await checkReplacement(client, object, live, signal);
      return { object, action: 'configured' as const, replace: { live, created } };
    }
    const dryRun = dryRunOutcome.result;
    const managedFields = live && takeOverHandManagedFields(live, object.object.apiVersion);
    const takeover = live && managedFields ? { takeover: { live, managedFields } } : {};
    // A takeover goes with a changed object's apply; for an unchanged one it comes after the
    // stages (see deploy.ts), and makes it `configured` only if it changes the object.
    const action: PlannedAction = !live ? 'created' : sameObject(live, dryRun) ? 'unchanged' : 'configured';
    observe?.(object, live, dryRun);
    return object.ref.kind === 'CustomResourceDefinition'
      ? { object, action, crd: { live, dryRun }, ...takeover }
      : { object, action, ...takeover };
  });
  signal?.throwIfAborted();
  if (lockLost !== undefined) throw lockLost;
  const planned: PlannedObject[] = [];
  const failures: ObjectFailure[] = [];
  const plannedAs = new Map<PreparedObject, PlannedAction>();
  settled.forEach((outcome) => {
    if (outcome.status === 'fulfilled') plannedAs.set(outcome.value.object, outcome.value.action);
  });
  for (const [index, outcome] of settled.entries()) {
    const object = objects[index] as PreparedObject;
    if (outcome.status === 'fulfilled') {
      planned.push(outcome.value);
      continue;
    }
    let reason: unknown = outcome.reason;
    let verb =
      reason instanceof OwnedElsewhereError || reason instanceof BeingDeletedError
        ? 'not applied'
        : 'dry-run rejected';
    if (reason instanceof RoleNotYetCreatedError) {
      const { role, refusal } = reason;
      // Applied after its role (order.ts), when nothing but the role's absence stopped its dry-run.
      const refused =
        plannedAs.get(role) === 'created'
          ? await checkBindingBeforeItsRole(client, object, role, signal).catch((error: unknown) => {
              signal?.throwIfAborted();
              return { verb: 'dry-run rejected', reason: error };
            })
          : { verb, reason: refusal };
      if (!refused) {
        planned.push({ object, action: 'created' });
        continue;
      }
      ({ verb, reason } = refused);
    }
    failures.push(objectFailure(object, verb, reason));
  }
  return { planned, failures };
}

interface CrdNames {
  group?: unknown;
  names?: { kind?: unknown };
}

/**
 * The owner check alone, before any write, for objects that cannot be dry-run until stage 1 is
 * applied (custom resources of a CRD the set changes): a copy of one already labelled as
 * another environment's stops the deploy before it changes the CRD, as a dry-run refusal
 * would. A read that fails is left to the dry-run after stage 1, which reads the object again
 * before its own write: failing here would hold back the very commit that repairs the read (a
 * CRD whose conversion webhook is broken).
 */
export async function checkOwnersBeforeWrites(
  client: ClusterClient,
  objects: readonly PreparedObject[],
  signal?: AbortSignal,
): Promise<ObjectFailure[]> {
  const settled = await settleWithConcurrency(objects, CONCURRENCY, async (object) => {
    // In whatever version the cluster serves the kind now: the commit may add the version its
    // objects are written in. A kind not served yet has no objects.
    const served = await client.resolveInAnyVersion(object.object.apiVersion, object.ref.kind, signal);
    if (!served) return;
    checkOwner(object, await client.get(served, object.ref.namespace, object.ref.name, signal));
  });
  signal?.throwIfAborted();
  const failures: ObjectFailure[] = [];
  settled.forEach((outcome, index) => {
    if (outcome.status === 'rejected' && outcome.reason instanceof OwnedElsewhereError)
      failures.push(objectFailure(objects[index] as PreparedObject, 'not applied', outcome.reason));
  });
  return failures;
}

/** `group|kind` of the custom resources a CRD defines: the key a resource's own `group|kind` meets. */
export function crdKindKey(crd: PreparedObject): string {
  const spec = (crd.object.spec ?? {}) as CrdNames;
  return `${String(spec.group)}|${String(spec.names?.kind)}`;
}

/** `group|kind` of an object, as `crdKindKey` gives it for the CRD that defines it. */
export function kindKeyOf(object: PreparedObject): string {
  return `${object.resource.group}|${object.ref.kind}`;
}

/** Why an object waits for stage 1: its kind's CRD, or only its Namespace, is new. */
export type StageOneNeed = 'kind' | 'namespace';

interface CrdSpec {
  scope?: unknown;
  conversion?: unknown;
  names?: { kind?: unknown; plural?: unknown };
  versions?: { name?: unknown }[];
}

/**
 * The versions of a changed CRD that the cluster already serves exactly as this set has them
 * (same kind, plural, scope, conversion and version entry, schema included, as the server
 * defaults them; short names or categories may differ): their custom resources can be
 * dry-run now, before any write, against the live CRD.
 */
function versionsServedAsInSet(planned: PlannedObject): string[] {
  const live = planned.crd?.live?.spec as CrdSpec | undefined;
  const next = planned.crd?.dryRun.spec as CrdSpec | undefined;
  if (!live || !next || live.scope !== next.scope) return [];
  if (live.names?.kind !== next.names?.kind || live.names?.plural !== next.names?.plural) return [];
  if (!jsonEqual(live.conversion, next.conversion)) return [];
  return (next.versions ?? [])
    .filter((version) =>
      jsonEqual(
        version,
        live.versions?.find((old) => old.name === version.name),
      ),
    )
    .map((version) => String(version.name));
}

/**
 * Objects that cannot be dry-run until stage 1 is applied: custom resources whose CRD in
 * this set is new, or changed in their version (the server does not know the new schema
 * yet), and objects in a Namespace this set creates.
 */
export function needsStageOne(
  objects: readonly PreparedObject[],
  stageOne: readonly PlannedObject[],
): Map<PreparedObject, StageOneNeed> {
  const newKinds = new Set<string>();
  const keptVersions = new Set<string>();
  const newNamespaces = new Set<string>();
  for (const planned of stageOne) {
    const { object, action } = planned;
    if (object.ref.kind === 'Namespace' && action === 'created') newNamespaces.add(object.ref.name);
    if (object.ref.kind === 'CustomResourceDefinition' && action !== 'unchanged') {
      const kind = crdKindKey(object);
      newKinds.add(kind);
      for (const version of versionsServedAsInSet(planned)) keptVersions.add(`${kind}|${version}`);
    }
  }
  const deferred = new Map<PreparedObject, StageOneNeed>();
  for (const object of objects) {
    if (object.stage !== 2) continue;
    const kind = kindKeyOf(object);
    const newKind =
      object.kindFromSet && newKinds.has(kind) && !keptVersions.has(`${kind}|${object.resource.version}`);
    const newNamespace = object.ref.namespace !== undefined && newNamespaces.has(object.ref.namespace);
    if (newKind) deferred.set(object, 'kind');
    else if (newNamespace) deferred.set(object, 'namespace');
  }
  return deferred;
}

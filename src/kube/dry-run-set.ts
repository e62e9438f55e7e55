import { setTimeout as sleep } from 'node:timers/promises';
import type { EnvironmentConfig } from '../config/schema.js';
import { compareApplyOrder } from '../manifests/order.js';
import type { PreparedObject } from '../manifests/prepare.js';
import type { ClusterClient } from './cluster.js';
import { checkAgainstCrdSchema } from './crd-schema-check.js';
import { objectFailure, type ObjectFailure } from './failures.js';
import {
  checkOwnersBeforeWrites,
  crdKindKey,
  kindKeyOf,
  needsStageOne,
  planObjects,
  type CompareObserver,
  type HandMadeRetry,
  type PlannedObject,
  type PlanResult,
} from './plan.js';
import { dryRunInStandInNamespace } from './stand-in-dry-run.js';

interface Planned {
  ordered: PreparedObject[];
  /** Dry-run done: each object's action. */
  actions: Map<PreparedObject, PlannedObject['action']>;
  /** Each object's plan, for what goes before its apply (a takeover, a replacement). */
  plannedBy: Map<PreparedObject, PlannedObject>;
  /** Not dry-run yet: they need the Namespaces/CRDs of stage 1 to exist first. */
  deferred: Set<PreparedObject>;
  /** How many of those were dry-run in a stand-in namespace meanwhile, and which one. */
  standIn: { namespace: string; tried: number };
}

/**
 * Custom resources whose CRD this set creates or changes, checked against that CRD's schema
 * as the set has it: the server can dry-run them only once the CRD is applied.
 */
function checkCustomResourcesAgainstSet(
  customResources: readonly PreparedObject[],
  stageOne: readonly PreparedObject[],
): ObjectFailure[] {
  const crds = new Map<string, PreparedObject>();
  for (const object of stageOne) {
    if (object.ref.kind === 'CustomResourceDefinition') crds.set(crdKindKey(object), object);
  }
  const failures: ObjectFailure[] = [];
  for (const object of customResources) {
    const crd = crds.get(kindKeyOf(object));
    const problems = crd ? checkAgainstCrdSchema(object.object, crd.object) : [];
    if (problems.length === 0) continue;
    const reason = new Error(`${problems.join('; ')} (by the schema of ${crd!.ref.name} in this set)`);
    failures.push(objectFailure(object, 'rejected before any write', reason));
  }
  return failures;
}

/**
 * Dry-runs stage 1 (Namespaces, CRDs), then every stage-2 object that does not need them,
 * and the objects bound for a new Namespace in `standIn`, a namespace that exists; collects
 * every rejection. Nothing is written, but for a deploy (`handMade`) the ownership of hand-made
 * fields that made a dry-run fail (planObjects), which deployToCluster puts back if the deploy fails.
 */
export async function dryRunBeforeWrites(
  client: ClusterClient,
  objects: readonly PreparedObject[],
  standIn: string,
  signal: AbortSignal | undefined,
  handMade?: HandMadeRetry,
  observe?: CompareObserver,
): Promise<Planned & { failures: ObjectFailure[] }> {
  const ordered = [...objects].sort((a, b) => a.stage - b.stage || compareApplyOrder(a.ref, b.ref));
  const stageOne = ordered.filter((object) => object.stage === 1);
  const first = await planObjects(client, stageOne, signal, handMade, ordered, observe);
  const needs = needsStageOne(ordered, first.planned);
  const deferred = new Set(needs.keys());
  const early = ordered.filter((object) => object.stage === 2 && !deferred.has(object));
  const forNamespace = [...needs].filter(([, need]) => need === 'namespace').map(([object]) => object);
  const forKind = [...needs].filter(([, need]) => need === 'kind').map(([object]) => object);
  const schemaFailures = checkCustomResourcesAgainstSet(forKind, stageOne);
  const ownerFailures = forKind.length > 0 ? await checkOwnersBeforeWrites(client, forKind, signal) : [];
  const second = await planObjects(client, early, signal, handMade, ordered, observe);
  // One after the other: each keeps its own CONCURRENCY requests in flight, not twice that.
  const standInFailures =
    forNamespace.length > 0 ? await dryRunInStandInNamespace(client, forNamespace, standIn, signal) : [];
  const actions = new Map<PreparedObject, PlannedObject['action']>();
  const plannedBy = new Map<PreparedObject, PlannedObject>();
  for (const planned of [...first.planned, ...second.planned]) {
    actions.set(planned.object, planned.action);
    plannedBy.set(planned.object, planned);
  }
  const failures = [
    ...first.failures,
    ...second.failures,
    ...standInFailures,
    ...schemaFailures,
    ...ownerFailures,
  ];
  return {
    ordered,
    actions,
    plannedBy,
    deferred,
    standIn: { namespace: standIn, tried: forNamespace.length },
    failures,
  };
}

/**
 * Where objects bound for a new Namespace are dry-run before any write: the environment's
 * own namespace, or, on the first deploy that creates it, `default`, which every cluster
 * starts with (without rights there the check is simply inconclusive).
 */
export function standInNamespace(environment: EnvironmentConfig, namespaceExists: boolean): string {
  return namespaceExists ? environment.namespace : 'default';
}

/** How long a changed CRD's new schema may take to reach the API server's apply. */
const CRD_SCHEMA_LAG_MS = 10_000;

function isSchemaLag(failure: ObjectFailure): boolean {
  return (
    failure.message.includes('failed to create typed patch object') &&
    failure.message.includes('not declared in schema')
  );
}

/** The objects that needed stage 1, dry-run once it is applied. */
export async function dryRunAfterStageOne(
  client: ClusterClient,
  deferred: ReadonlySet<PreparedObject>,
  ordered: readonly PreparedObject[],
  crdsChanged: boolean,
  signal: AbortSignal | undefined,
  handMade: HandMadeRetry,
): Promise<PlanResult> {
  let late = await planObjects(client, [...deferred], signal, handMade, ordered);
  // Established is not yet applied-with: the API server's apply schema of a changed CRD lags
  // a moment, refusing a field its new version declares. The commit's schema was checked
  // before any write, so such a refusal now is that lag: asked again until it passes.
  const until = Date.now() + CRD_SCHEMA_LAG_MS;
  while (crdsChanged && late.failures.some(isSchemaLag) && Date.now() < until) {
    await sleep(250, undefined, { signal });
    late = await planObjects(client, [...deferred], signal, handMade, ordered);
  }
  return late;
}

import { setTimeout as sleep } from 'node:timers/promises';
import type { EnvironmentConfig } from '../config/schema.js';
import { counted } from '../lib/counted.js';
import { errorMessage, PushgateError } from '../lib/errors.js';
import { matchAnyGlob } from '../manifests/glob.js';
import { applyStage } from '../manifests/order.js';
import { ENVIRONMENT_LABEL, type PreparedObject } from '../manifests/prepare.js';
import { emptySetMessage } from '../manifests/load.js';
import { describeSource, formatProblems } from '../manifests/problems.js';
import { describeRef } from '../manifests/resource-info.js';
import type { LoadedManifest, ManifestObject, ObjectRef } from '../manifests/types.js';
import type { ResourceResult } from '../status/job-record.js';
import type { ClusterClient } from './cluster.js';
import { failuresError, type ObjectFailure } from './failures.js';
import { isHealthChecked } from './health.js';
import {
  deleteInventory,
  inventoriesLeftIn,
  inventoryName,
  inventoryNamespaceExists,
  mergeInventories,
  readInventory,
  refKey,
  sameInstallation,
  sameRefs,
  writeInventory,
  type Inventory,
  type InventoriesLeft,
} from './inventory.js';
import { mapWithConcurrency } from './map-with-concurrency.js';
import { CONCURRENCY, planObjects, type HandMadeRetry, type PlannedObject } from './plan.js';
import { pruneObjects } from './prune.js';
import { applyChanged } from './apply-changed.js';
import { resultOf, Results } from './deploy-results.js';
import { dryRunBeforeWrites, standInNamespace } from './dry-run-set.js';
import { takeOverAndReapply } from './field-takeover.js';
import { ProgressWrites } from './progress-writes.js';
import { undoOwnership, type TakenWithApply } from './takeover-steps.js';
import { validate } from './validate-set.js';
import { keptForOtherEnvironments } from './shared-containers.js';
import { DeployError, type DeployOutcome, type DeployRequest } from './types.js';
import { waitForCrdsEstablished, waitForReadiness, type UnhealthyObject } from './wait.js';
import { redactSecretValues } from './secret-redaction.js';

/**
 * Makes the environment's cluster match the manifests (SPEC §4): validate and policy-check
 * everything, server-side dry-run everything, then apply in two stages (Namespaces and CRDs,
 * waiting for the CRDs to be established; then the rest in kind order), prune what the
 * previous deploy applied and this one does not, record the inventory, wait for health.
 *
 * Objects of a CRD or in a Namespace that this same set introduces are dry-run after stage 1
 * is applied, still before any stage-2 write: when one of them is rejected, stage 1 (and
 * only stage 1) has been applied. Those bound for a new Namespace are also dry-run in the
 * environment's namespace (or `default`) before any write, which catches what is wrong with
 * the object itself.
 */
export async function deployToCluster(client: ClusterClient, request: DeployRequest): Promise<DeployOutcome> {
  // What was said before a failure (a lost or moved inventory) stays on the failed job too.
  const warnings: string[] = [];
  // Takes the ownership of hand-made fields a dry-run fails on: see dryRunTakingOver.
  const handMade: HandMadeRetry = { beforeWrite: request.assertLockHeld, undos: new Map() };
  try {
    return await applyEnvironment(client, request, warnings, handMade);
  } catch (error) {
    await undoOwnership(handMade);
    if (error instanceof DeployError) error.warnings.push(...warnings);
    throw error;
  }
}

async function applyEnvironment(
  client: ClusterClient,
  request: DeployRequest,
  warnings: string[],
  handMade: HandMadeRetry,
): Promise<DeployOutcome> {
  const { environment, signal } = request;
  const logger = request.logger.child({ cluster: client.name });
  const progress = (message: string, details: Record<string, unknown> = {}): void => {
    logger.info(details, message);
    request.onProgress?.(message);
  };

  if (request.manifests.length === 0 && !environment.allowEmpty) {
    throw new DeployError('manifest_invalid', emptySetMessage(environment.name, environment.path, []), {
      permanent: true,
    });
  }

  const objects = await validate(client, environment, request.manifests);
  const clash = objects.find(
    (object) =>
      object.ref.kind === 'ConfigMap' &&
      object.ref.namespace === environment.namespace &&
      object.ref.name === inventoryName(environment.name),
  );
  if (clash) {
    throw new DeployError(
      'manifest_invalid',
      `${describeSource(clash.source)}: ${describeRef(clash.ref)} is pushgate's inventory of environment ${environment.name}; choose another name`,
      { permanent: true },
    );
  }
  const homes = request.inventoryHomes;
  const [home, left, namespaceExists] = await Promise.all([
    readInventory(client, environment, signal),
    inventoriesLeftIn(client, environment, homes?.recorded ?? [], signal, request.installation),
    inventoryNamespaceExists(client, environment, signal),
  ]);
  if (home && !sameInstallation(home, request.installation)) {
    throw new DeployError(
      'apply_rejected',
      `inventory ConfigMap ${environment.namespace}/${inventoryName(environment.name)} was written by another pushgate ` +
        `installation (${home.installation ?? 'unknown'}; this one is ${request.installation ?? 'unknown'}), whose ` +
        `environment has the same name: installations that share a cluster must name their environments apart ` +
        `(docs/production.md); nothing was changed` +
        restoreInstallationAdvice(home.installation, request.installationKey),
      { permanent: true },
    );
  }
  const previous = mergeInventories([...(home ? [home] : []), ...left.found.map((found) => found.inventory)]);
  for (const found of left.found) {
    const warning =
      `inventory of ${environment.name} found in namespace ${found.namespace}, not ${environment.namespace} (the environment's ` +
      `namespace was changed): what it lists and git no longer holds is ` +
      `${environment.prune ? 'pruned (where allow.namespaces permits)' : 'left (prune is off)'}, ` +
      `and the inventory moves to ${environment.namespace}`;
    warnings.push(warning);
    logger.warn(warning);
  }
  for (const namespace of left.unreadable) {
    const warning =
      `inventory of ${environment.name} in namespace ${namespace} (where it was before the environment's namespace ` +
      `was changed) cannot be read (forbidden): what it lists is not pruned until this worker may read it there`;
    warnings.push(warning);
    logger.warn(warning);
  }
  // Recorded before the first write there, so a move that fails after it is finished (or
  // undone, should `namespace` change back) by whichever deploy comes next.
  let homeRecorded = false;
  // An inventory written before pushgate kept this record gets on it now: a later move finds it.
  if (home && homes && !homes.recorded.includes(environment.namespace)) {
    await homes.add(environment.namespace);
    homeRecorded = true;
  }
  const writeHome = async (inventory: Inventory): Promise<void> => {
    if (!homeRecorded) await homes?.add(environment.namespace);
    homeRecorded = true;
    await writeInventory(client, environment, inventory, signal, request.installation);
  };
  if (!previous && request.lastAppliedSha && environment.prune) {
    const warning =
      `inventory ConfigMap ${environment.namespace}/${inventoryName(environment.name)} was missing, though ` +
      `${environment.name} was deployed before (at ${request.lastAppliedSha.slice(0, 12)}): objects removed from git ` +
      `since then are not pruned; they carry the label ${ENVIRONMENT_LABEL}=${environment.name}`;
    warnings.push(warning);
    logger.warn(warning);
  }
  const homeNamespace = objects.find(
    (object) =>
      object.ref.kind === 'Namespace' &&
      object.ref.apiVersion === 'v1' &&
      object.ref.name === environment.namespace,
  );
  if (!namespaceExists && !homeNamespace) {
    throw new DeployError(
      'apply_rejected',
      `namespace ${environment.namespace} (the namespace of environment ${environment.name}, which holds its inventory) ` +
        'does not exist: create it, or add a Namespace object for it to the manifests',
      { permanent: true, resources: objects.map((object) => resultOf(object.ref, 'skipped', 'not applied')) },
    );
  }

  const plan = await dryRunBeforeWrites(
    client,
    objects,
    standInNamespace(environment, namespaceExists),
    signal,
    handMade,
  );
  const { ordered, actions, plannedBy, deferred } = plan;
  const results = new Results(ordered, 'not applied: the deploy stopped before this object');
  const written = new ProgressWrites(request.onWritten, request.onCreating, () => results.list());
  if (plan.failures.length > 0) {
    results.fail(plan.failures);
    throw failuresError(
      plan.failures,
      'server-side dry-run rejected the set, nothing was changed',
      results.list('not applied: dry-run of the set failed'),
    );
  }
  const tried =
    plan.standIn.tried > 0
      ? ` (${plan.standIn.tried} tried first in namespace ${plan.standIn.namespace})`
      : '';
  progress(
    `dry-run ok: ${counted(actions.size, 'object')}${deferred.size > 0 ? `, ${deferred.size} after stage 1${tried}` : ''}`,
    summarize(actions),
  );

  // Before the first write, the inventory grows to cover everything this deploy may create,
  // so objects written by a deploy that then fails are still pruned once the set drops them.
  // It can only be written once the environment's namespace exists: when this set creates
  // it, as soon as the stage-1 group that applied it is done.
  let owned = false;
  const recordOwnership = async (): Promise<void> => {
    const home = homeNamespace && results.get(homeNamespace)?.action;
    if (owned || !(namespaceExists || (home !== undefined && home !== 'failed'))) return;
    owned = true;
    const known = new Set((previous?.objects ?? []).map(refKey));
    const added = ordered.map((object) => object.ref).filter((ref) => !known.has(refKey(ref)));
    if (added.length === 0) return;
    await request.assertLockHeld();
    await writeHome({
      revision: previous?.revision ?? '',
      objects: [...(previous?.objects ?? []), ...added],
    });
  };
  const beforeWrite = async (): Promise<void> => {
    await request.assertLockHeld();
    await recordOwnership();
  };

  const takenWithApply: TakenWithApply = {
    done: new Set(),
    warn: (warning) => {
      warnings.push(warning);
      logger.warn(warning);
    },
    landed: (object) => handMade.undos.delete(object),
  };
  const applyObjects = (objects: readonly PreparedObject[]): Promise<ObjectFailure[]> =>
    applyChanged(client, objects, actions, plannedBy, results, beforeWrite, signal, written, takenWithApply);

  const stageOne = ordered.filter((object) => object.stage === 1);
  let crdsChanged = false;
  if (stageOne.some((object) => actions.get(object) !== 'unchanged')) {
    const failures = await applyObjects(stageOne);
    await recordOwnership();
    if (failures.length > 0) {
      results.fail(failures);
      throw failuresError(failures, 'apply of Namespaces and CRDs failed', results.list());
    }
    const changedCrds = stageOne.filter(
      (object) => object.ref.kind === 'CustomResourceDefinition' && actions.get(object) !== 'unchanged',
    );
    if (changedCrds.length > 0) {
      crdsChanged = true;
      await waitForCrdsEstablished(client, changedCrds, () => results.list(), signal);
      client.discovery.invalidate();
    }
    progress(`stage 1 applied: ${stageOne.length} Namespaces and CRDs`);
    await written.now();
  } else {
    for (const object of stageOne) results.set(object, 'unchanged');
  }

  if (deferred.size > 0) {
    let late = await planObjects(client, [...deferred], signal, handMade, ordered);
    // Established is not yet applied-with: the API server's apply schema of a changed CRD lags
    // a moment, refusing a field its new version declares. The commit's schema was checked
    // before any write, so such a refusal now is that lag: asked again until it passes.
    const until = Date.now() + CRD_SCHEMA_LAG_MS;
    while (crdsChanged && late.failures.some(isSchemaLag) && Date.now() < until) {
      await sleep(250, undefined, { signal });
      late = await planObjects(client, [...deferred], signal, handMade, ordered);
    }
    for (const planned of late.planned) {
      actions.set(planned.object, planned.action);
      plannedBy.set(planned.object, planned);
    }
    if (late.failures.length > 0) {
      results.fail(late.failures);
      throw failuresError(
        late.failures,
        'server-side dry-run rejected objects that needed stage 1; only Namespaces and CRDs were applied',
        results.list('not applied: dry-run of the set failed'),
      );
    }
  }

  const stageTwo = ordered.filter((object) => object.stage === 2);
  const applyFailures = await applyObjects(stageTwo);
  if (applyFailures.length > 0) {
    results.fail(applyFailures);
    throw failuresError(applyFailures, 'apply failed', results.list());
  }
  progress(`applied: ${counted(ordered.length, 'object')}`, summarize(actions));
  await written.now();

  // Once everything applied: what kubectl set by hand on objects the commit did not change,
  // and git no longer declares, goes (changed ones had theirs taken with their apply).
  const takeovers = ordered.filter((object) => {
    const planned = plannedBy.get(object);
    return (
      planned?.takeover !== undefined && planned.replace === undefined && !takenWithApply.done.has(object)
    );
  });
  if (takeovers.length > 0) {
    await request.assertLockHeld();
    const outcomes = await mapWithConcurrency(takeovers, CONCURRENCY, (object) =>
      takeOverAndReapply(client, object, signal).catch((error: unknown) => ({
        taken: false,
        warning: `${describeRef(object.ref)}: hand-made fields not taken over: ${redactSecretValues(errorMessage(error), object.object)}`,
      })),
    );
    outcomes.forEach(({ taken, warning }, index) => {
      if (taken) results.set(takeovers[index]!, 'configured');
      if (warning === undefined) return;
      warnings.push(warning);
      logger.warn(warning);
    });
  }

  await recordAndPrune(client, request, ordered, { previous, left, writeHome }, results, progress);
  await written.now();

  const overtaken =
    environment.healthTimeout > 0
      ? await checkHealth(client, request, ordered, results, progress)
      : undefined;
  return {
    resources: results.list(),
    ...(warnings.length > 0 ? { warnings } : {}),
    ...(overtaken ? { overtaken } : {}),
  };
}

function summarize(actions: ReadonlyMap<PreparedObject, PlannedObject['action']>): Record<string, number> {
  const counts: Record<string, number> = { created: 0, configured: 0, unchanged: 0 };
  for (const action of actions.values()) counts[action] = (counts[action] ?? 0) + 1;
  return counts;
}

/**
 * Stale objects prune must leave, each with why; they stay in the inventory until that
 * changes. A Namespace that objects of the set still live in, or a CRD that objects of the set
 * are instances of: deleting one deletes those objects too (the namespace controller, the
 * CRD's own finalizer), although git still declares them. And anything outside what the
 * environment may write now (allow narrowed since it was applied): a delete is a write.
 */
function keptFromPrune(
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
    const outside =
      ref.namespace === undefined
        ? !environment.allow.clusterScoped && 'it is cluster-scoped and allow.clusterScoped is false'
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
 * The inventory first grows to old ∪ new (so a crash mid-prune forgets nothing), then the
 * stale objects are pruned, then it becomes the new set plus whatever failed to delete or is
 * must stay (keptFromPrune).
 * Prune failures fail the job (after the inventory is correct), so they are seen and retried.
 */
async function recordAndPrune(
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
  const stale = environment.prune
    ? (previous?.objects ?? []).filter((ref) => !currentKeys.has(refKey(ref)))
    : [];

  if (stale.length > 0) {
    await request.assertLockHeld();
    await writeHome({ revision: sha, objects: [...current, ...stale] });
    const needed = keptFromPrune(stale, ordered, environment);
    const elsewhere = await keptForOtherEnvironments(
      client,
      environment.name,
      stale.filter((ref) => !needed.has(ref)),
      signal,
      request.installation,
    );
    for (const [ref, why] of elsewhere) needed.set(ref, why);
    const pruned = await pruneObjects(
      client,
      environment,
      stale.filter((ref) => !needed.has(ref)),
      request.assertLockHeld,
      signal,
    );
    results.extra.push(...pruned.results);
    for (const [ref, why] of needed) results.extra.push(resultOf(ref, 'skipped', why));
    const kept = [...needed.keys(), ...pruned.failures.map((failure) => failure.ref)];
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
  const unchanged = previous && previous.revision === sha && sameRefs(previous.objects, current);
  if (!unchanged || left.found.length > 0) {
    await request.assertLockHeld();
    await writeHome({ revision: sha, objects: current });
  }
  await retireElsewhere();
}

/**
 * Every Deployment, StatefulSet, DaemonSet and Job of the set, unchanged ones too (kstatus
 * judges the cluster, not the diff): a deploy is healthy only when all of them are. Returns
 * what overtook the wait when a newer commit's job ended it early (as Flux's
 * CancelHealthCheckOnNewRevision): a fix pushed for a failing rollout goes out at once
 * instead of after `healthTimeout`.
 */
async function checkHealth(
  client: ClusterClient,
  request: DeployRequest,
  ordered: readonly PreparedObject[],
  results: Results,
  progress: (message: string, details?: Record<string, unknown>) => void,
): Promise<DeployOutcome['overtaken']> {
  const watched = ordered.filter((object) => isHealthChecked(object.ref));
  if (watched.length === 0) return undefined;
  const until = new Date(Date.now() + request.environment.healthTimeout).toISOString();
  progress(
    `waiting up to ${request.environment.healthTimeout / 1000}s for ${counted(watched.length, 'workload')} to be ready`,
  );
  // What the wait is on, as it changes (not every poll): the job record shows it while running.
  let said = '';
  const onPoll = (pending: readonly UnhealthyObject[]): void => {
    const [first] = pending;
    if (!first) return;
    const more = pending.length > 1 ? ` (and ${pending.length - 1} more)` : '';
    const message = `waiting until ${until} for ${counted(pending.length, 'workload')} to be ready: ${describeRef(first.object.ref)}: ${first.readiness.message}${more}`;
    if (message === said) return;
    said = message;
    progress(message);
  };
  const newer = request.newerCommit;
  const { lockLost } = request;
  const { unhealthy, interruptedBy } = await waitForReadiness(
    client,
    watched,
    request.environment.healthTimeout,
    {
      signal: request.signal,
      onPoll,
      ...(newer ? { interrupt: () => newer.ask() } : {}),
      // A worker that lost the job (stalled past its locks) must not wait on, and then judge
      // a deploy whose verdict is the new holder's.
      ...(lockLost
        ? {
            assertStillOurs: async () => {
              if (await lockLost())
                throw new PushgateError(
                  'transient',
                  `lost the deploy lock of environment "${request.environment.name}" during the health wait`,
                );
            },
          }
        : {}),
    },
  ).finally(() => newer?.stop());
  if (unhealthy.length === 0) {
    progress('all workloads ready');
    return undefined;
  }
  const lines = unhealthy.map(({ object, readiness }) => `${describeRef(object.ref)}: ${readiness.message}`);
  if (interruptedBy !== undefined) {
    for (const { object, readiness } of unhealthy) {
      const current = results.get(object);
      results.set(
        object,
        current?.action ?? 'unchanged',
        withEarlier(current, `not ready when a newer commit ended the wait: ${readiness.message}`),
      );
    }
    progress(`health wait ended: ${interruptedBy} is newer and queued`, { by: interruptedBy });
    return { by: interruptedBy, notReady: lines };
  }
  const failedEarly = unhealthy.some((entry) => entry.readiness.state === 'failed');
  for (const { object, readiness } of unhealthy) {
    const current = results.get(object);
    results.set(
      object,
      current?.action ?? 'unchanged',
      withEarlier(current, `not ready: ${readiness.message}`),
    );
  }
  const headline = failedEarly
    ? 'workloads failed'
    : `workloads not ready after ${request.environment.healthTimeout / 1000}s`;
  throw new DeployError('health_timeout', `${headline}:\n  ${lines.join('\n  ')}`, {
    permanent: true,
    resources: results.list(),
  });
}

/** How long a changed CRD's new schema may take to reach the API server's apply. */
const CRD_SCHEMA_LAG_MS = 10_000;

function isSchemaLag(failure: ObjectFailure): boolean {
  return (
    failure.message.includes('failed to create typed patch object') &&
    failure.message.includes('not declared in schema')
  );
}

/** What the apply said of an object (`replaced: …`) stays in front of what its health adds. */
function withEarlier(result: ResourceResult | undefined, message: string): string {
  return result?.message ? `${result.message}; ${message}` : message;
}

export interface RenderRequest {
  environment: EnvironmentConfig;
  manifests: LoadedManifest[];
  signal?: AbortSignal;
}

/**
 * What a deploy would apply, in file order: validated, policy-checked and server-side
 * dry-run (no writes). Objects of a CRD introduced by the same set are validated locally
 * only, since the server cannot judge them before it exists; objects bound for a Namespace
 * the set introduces are dry-run in the environment's namespace (or `default`) instead.
 */
export async function renderForCluster(
  client: ClusterClient,
  request: RenderRequest,
): Promise<ManifestObject[]> {
  const { environment, signal } = request;
  const objects = await validate(client, environment, request.manifests);
  // Only the choice of a stand-in namespace needs to know; render must not fail for it.
  const namespaceExists = await inventoryNamespaceExists(client, environment, signal).catch(() => false);
  const plan = await dryRunBeforeWrites(
    client,
    objects,
    standInNamespace(environment, namespaceExists),
    signal,
  );
  if (plan.failures.length > 0) {
    const results = new Results(plan.ordered, 'not applied: dry-run of the set failed');
    results.fail(plan.failures);
    throw failuresError(plan.failures, 'server-side dry-run rejected the set', results.list());
  }
  return objects.map((object) => object.object);
}

/** What pushgate writes as an installation id (JobStore.installationId). */
const INSTALLATION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * How to make this installation the one that wrote an inventory, after Redis lost its data.
 * Only for an id pushgate could have made: the annotation is whatever the cluster holds, and
 * the operator is told to run this.
 */
function restoreInstallationAdvice(found: string | undefined, key: string | undefined): string {
  if (!found || !INSTALLATION_ID.test(found)) return '';
  return (
    `. If it is this installation's own and Redis lost pushgate's data (a restart without persistence, a new ` +
    `Redis), make this installation that one again: SET ${key ?? '{pushgate}:installation'} ${found} in pushgate's Redis ` +
    '(suspensions were lost with that data: first suspend again any environment that must stay held)'
  );
}

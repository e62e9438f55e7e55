import { setTimeout as sleep } from 'node:timers/promises';
import { counted } from '../lib/counted.js';
import { errorMessage } from '../lib/errors.js';
import { ENVIRONMENT_LABEL, type PreparedObject } from '../manifests/prepare.js';
import { emptySetMessage } from '../manifests/load.js';
import { describeSource } from '../manifests/problems.js';
import { describeRef } from '../manifests/resource-info.js';
import type { ClusterClient } from './cluster.js';
import { failuresError, type ObjectFailure } from './failures.js';
import {
  inventoriesLeftIn,
  inventoryName,
  inventoryNamespaceExists,
  mergeInventories,
  readInventory,
  refKey,
  sameInstallation,
  writeInventory,
  type Inventory,
} from './inventory.js';
import { mapWithConcurrency } from './map-with-concurrency.js';
import { CONCURRENCY, planObjects, type HandMadeRetry, type PlannedObject } from './plan.js';
import { applyChanged } from './apply-changed.js';
import { resultOf, Results } from './deploy-results.js';
import { dryRunBeforeWrites, standInNamespace } from './dry-run-set.js';
import { takeOverAndReapply } from './field-takeover.js';
import { checkHealth } from './health-step.js';
import { ProgressWrites } from './progress-writes.js';
import { recordAndPrune } from './prune-step.js';
import { undoOwnership, type TakenWithApply } from './takeover-steps.js';
import { validate } from './validate-set.js';
import { DeployError, type DeployOutcome, type DeployRequest } from './types.js';
import { waitForCrdsEstablished } from './wait.js';
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

/** How long a changed CRD's new schema may take to reach the API server's apply. */
const CRD_SCHEMA_LAG_MS = 10_000;

function isSchemaLag(failure: ObjectFailure): boolean {
  return (
    failure.message.includes('failed to create typed patch object') &&
    failure.message.includes('not declared in schema')
  );
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

import { counted } from '../lib/counted.js';
import type { PreparedObject } from '../manifests/prepare.js';
import type { ClusterClient } from './cluster.js';
import { applyChanged } from './apply-changed.js';
import { readDeployInventory, ownershipRecorder } from './deploy-inventory.js';
import { Results } from './deploy-results.js';
import { dryRunAfterStageOne, dryRunBeforeWrites, standInNamespace } from './dry-run-set.js';
import { failuresError, type ObjectFailure } from './failures.js';
import { checkHealth } from './health-step.js';
import type { HandMadeRetry, PlannedObject } from './plan.js';
import { ProgressWrites } from './progress-writes.js';
import { recordAndPrune } from './prune-step.js';
import { takeOverAfterApply, undoOwnership, type TakenWithApply } from './takeover-steps.js';
import { ThrottleLog } from './throttle-log.js';
import { DeployError, type DeployOutcome, type DeployRequest } from './types.js';
import { validateForDeploy } from './validate-set.js';
import { waitForCrdsEstablished } from './wait.js';

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
export async function deployToCluster(
  cluster: ClusterClient,
  request: DeployRequest,
): Promise<DeployOutcome> {
  // What was said before a failure (a lost or moved inventory) stays on the failed job too.
  const warnings: string[] = [];
  // Takes the ownership of hand-made fields a dry-run fails on: see dryRunTakingOver.
  const handMade: HandMadeRetry = { beforeWrite: request.assertLockHeld, undos: new Map() };
  // The cluster's transport serves every job: this job's throttled waits go to its own log.
  const throttled = new ThrottleLog(request.logger.child({ cluster: cluster.name }));
  const client = cluster.forJob({ onThrottled: throttled.onThrottled });
  try {
    return await applyEnvironment(client, request, warnings, handMade);
  } catch (error) {
    await undoOwnership(handMade);
    if (error instanceof DeployError) error.warnings.push(...warnings);
    throw error;
  } finally {
    throttled.flush();
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

  const objects = await validateForDeploy(client, request);
  const inventory = await readDeployInventory(client, request, objects, warnings, logger);
  const { previous, left, namespaceExists, writeHome } = inventory;

  const plan = await dryRunBeforeWrites(
    client,
    objects,
    standInNamespace(environment, namespaceExists),
    signal,
    handMade,
  );
  const { ordered, actions, plannedBy, deferred } = plan;
  const results = new Results(ordered, 'not applied: the deploy stopped before this object');
  const written = new ProgressWrites(request.onWritten, request.onChanging, () => results.list());
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

  const recordOwnership = ownershipRecorder(request, inventory, ordered, results);
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
    applyChanged(
      client,
      objects,
      actions,
      plannedBy,
      results,
      beforeWrite,
      signal,
      written,
      takenWithApply,
      request.assertLockHeldNow,
    );

  const crdsChanged = await applyStageOne(
    client,
    ordered.filter((object) => object.stage === 1),
    actions,
    results,
    applyObjects,
    recordOwnership,
    written,
    progress,
    signal,
  );

  if (deferred.size > 0) {
    const late = await dryRunAfterStageOne(client, deferred, ordered, crdsChanged, signal, handMade);
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

  await takeOverAfterApply(
    client,
    ordered,
    plannedBy,
    results,
    takenWithApply,
    request.assertLockHeld,
    signal,
  );

  await recordAndPrune(client, request, ordered, { previous, left, writeHome }, results, progress, () =>
    written.now(),
  );
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

/**
 * Stage 1, when any of it changed: Namespaces and CRDs applied, then the changed CRDs waited
 * for until established. Whether any CRD changed: its schema may still lag (dryRunAfterStageOne).
 */
async function applyStageOne(
  client: ClusterClient,
  stageOne: readonly PreparedObject[],
  actions: ReadonlyMap<PreparedObject, PlannedObject['action']>,
  results: Results,
  applyObjects: (objects: readonly PreparedObject[]) => Promise<ObjectFailure[]>,
  recordOwnership: () => Promise<void>,
  written: ProgressWrites,
  progress: (message: string) => void,
  signal: AbortSignal | undefined,
): Promise<boolean> {
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
  return crdsChanged;
}

function summarize(actions: ReadonlyMap<PreparedObject, PlannedObject['action']>): Record<string, number> {
  const counts: Record<string, number> = { created: 0, configured: 0, unchanged: 0 };
  for (const action of actions.values()) counts[action] = (counts[action] ?? 0) + 1;
  return counts;
}

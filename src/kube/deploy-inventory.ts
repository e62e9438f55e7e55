import { PushgateError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { ENVIRONMENT_LABEL, type PreparedObject } from '../manifests/prepare.js';
import type { ClusterClient } from './cluster.js';
import { resultOf, type Results } from './deploy-results.js';
import {
  assertInventoryFits,
  inventoriesLeftIn,
  inventoryName,
  inventoryNamespaceExists,
  mergeInventories,
  readInventory,
  refKey,
  sameInstallation,
  writeInventory,
  type InventoriesLeft,
  type Inventory,
} from './inventory.js';
import { DeployError, type DeployRequest } from './types.js';

/** The environment's inventory as a deploy finds it, before any write. */
export interface DeployInventory {
  /** Every inventory of the environment found, merged. */
  previous: Inventory | undefined;
  left: InventoriesLeft;
  namespaceExists: boolean;
  /** The set's Namespace object for the environment's namespace, if it has one. */
  homeNamespace: PreparedObject | undefined;
  writeHome: (inventory: Inventory) => Promise<void>;
}

/**
 * Refuses, before any write, an inventory another installation wrote and an environment's
 * namespace that neither exists nor is in the set; says what is amiss with the inventory.
 */
export async function readDeployInventory(
  client: ClusterClient,
  request: DeployRequest,
  objects: readonly PreparedObject[],
  warnings: string[],
  logger: Logger,
): Promise<DeployInventory> {
  const { environment, signal } = request;

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
  assertSetFits(environment, previous, objects);
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
  return { previous, left, namespaceExists, homeNamespace, writeHome };
}

/** What the deploy writes as the inventory before its first write must fit it, or nothing is written. */
export function assertSetFits(
  environment: DeployRequest['environment'],
  previous: Inventory | undefined,
  objects: readonly PreparedObject[],
): void {
  const planned = mergeInventories([
    { revision: '', objects: objects.map((object) => object.ref) },
    ...(previous ? [previous] : []),
  ]);
  try {
    if (planned) assertInventoryFits(environment, planned.objects, previous?.objects.length ?? 0);
  } catch (error) {
    if (!(error instanceof PushgateError)) throw error;
    throw new DeployError(error.code, error.message, {
      permanent: true,
      resources: objects.map((object) => resultOf(object.ref, 'skipped', 'not applied')),
    });
  }
}

/**
 * Before the first write, the inventory grows to cover everything this deploy may create,
 * so objects written by a deploy that then fails are still pruned once the set drops them.
 * It can only be written once the environment's namespace exists: when this set creates
 * it, as soon as the stage-1 group that applied it is done.
 */
export function ownershipRecorder(
  request: DeployRequest,
  inventory: DeployInventory,
  ordered: readonly PreparedObject[],
  results: Results,
): () => Promise<void> {
  const { previous, namespaceExists, homeNamespace, writeHome } = inventory;
  let owned = false;
  return async (): Promise<void> => {
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

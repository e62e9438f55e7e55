import { gunzipSync, gzipSync } from 'node:zlib';
import { z } from 'zod';
import type { EnvironmentConfig } from '../config/schema.js';
import { PushgateError } from '../lib/errors.js';
import { ENVIRONMENT_LABEL } from '../manifests/prepare.js';
import { compareApplyOrder } from '../manifests/order.js';
import { canonicalApiVersion, splitApiVersion, type ResourceInfo } from '../manifests/resource-info.js';
import type { ObjectRef } from '../manifests/types.js';
import type { ClusterClient, LiveObject } from './cluster.js';
import { KubeApiError } from './api-error.js';

/**
 * What the last successful deploy of an environment applied, kept in the cluster as the
 * ConfigMap `pushgate-inventory-<environment>` in the environment's namespace, plus what
 * any later deploy was about to apply when it failed (recorded before its first write, so
 * whatever it created is pruned once the set drops it):
 *
 *   data.revision:              the commit sha of the last successful deploy
 *   data.objects.json:          one JSON ref per line, {"apiVersion","kind","namespace"?,"name"}
 *   binaryData.objects.json.gz: the same lines gzipped, instead, when they do not fit
 *
 * A ConfigMap holds 1 MiB: about 10,000 refs as plain lines, far more gzipped. Plain is kept
 * wherever it fits, so `kubectl get` shows the list and every inventory an earlier version
 * could write reads the same to it. Prune works from this list only, never from names or
 * labels alone.
 */
export interface Inventory {
  revision: string;
  objects: ObjectRef[];
  /** The pushgate installation that wrote it (absent on one written before the stamp). */
  installation?: string;
}

/** Which pushgate installation (one Redis, one prefix) wrote an inventory. */
export const INSTALLATION_ANNOTATION = 'pushgate.dev/installation';

/** True unless both are known and differ: an unstamped inventory predates the stamp. */
export function sameInstallation(inventory: Inventory, installation: string | undefined): boolean {
  return !inventory.installation || !installation || inventory.installation === installation;
}

export const INVENTORY_LABEL = 'pushgate.dev/inventory';

const CONFIG_MAP: ResourceInfo = {
  group: '',
  version: 'v1',
  kind: 'ConfigMap',
  plural: 'configmaps',
  namespaced: true,
};
const NAMESPACE: ResourceInfo = {
  group: '',
  version: 'v1',
  kind: 'Namespace',
  plural: 'namespaces',
  namespaced: false,
};

const refSchema = z
  .object({
    apiVersion: z.string().min(1).transform(canonicalApiVersion),
    kind: z.string().min(1),
    namespace: z.string().min(1).optional(),
    name: z.string().min(1),
  })
  .strict();

const REFS_KEY = 'objects.json';
const PACKED_REFS_KEY = 'objects.json.gz';
/**
 * The plain list's only line while the list is gzipped. Versions that read only the plain
 * list take it for no ref and fail the deploy, writing nothing: read as empty, their deploy
 * would prune nothing and write a list without the gzipped refs, which were then never pruned.
 */
const PACKED_MARKER = JSON.stringify({ listedIn: `binaryData.${PACKED_REFS_KEY}` });
/** What the API server lets a ConfigMap's data and binaryData hold together. */
const CONFIG_MAP_MAX_BYTES = 1024 * 1024;
/** The most objects an environment may hold: far past any realistic set. */
export const INVENTORY_MAX_OBJECTS = 50_000;
/**
 * Any ConfigMap labelled as an inventory, anywhere, is read when another environment prunes
 * a Namespace or CRD: a small gzip member must not inflate past what a real list is (50,000
 * refs of ~300 bytes; the writes refuse a longer list).
 */
const UNPACKED_REFS_MAX_BYTES = 24 * 1024 * 1024;

export function inventoryName(environment: string): string {
  return `pushgate-inventory-${environment}`;
}

type InventoryEnvironment = Pick<EnvironmentConfig, 'name' | 'namespace'>;

function inventoryError(environment: InventoryEnvironment, message: string): PushgateError {
  return new PushgateError(
    'apply_rejected',
    `inventory ConfigMap ${environment.namespace}/${inventoryName(environment.name)}: ${message}`,
    { permanent: true },
  );
}

/** The inventory, or an empty one when none was written yet. */
export async function readInventory(
  client: ClusterClient,
  environment: InventoryEnvironment,
  signal?: AbortSignal,
): Promise<Inventory | undefined> {
  const live = await client.get(CONFIG_MAP, environment.namespace, inventoryName(environment.name), signal);
  return live && parseInventory(live, environment);
}

/** Every other environment's inventory, and those labelled as inventories that could not be read. */
export interface OtherInventories {
  /** Each with the namespace its ConfigMap is in. */
  byOwner: Map<string, Inventory & { home: string }>;
  /** Their environments, each with why: what they own is unknown. */
  unreadable: Map<string, string>;
}

/**
 * Every other environment's inventory in the cluster (any namespace), by environment: what
 * they own; a same-named environment of another installation counts as another.
 */
export async function otherInventories(
  client: ClusterClient,
  environment: string,
  signal?: AbortSignal,
  installation?: string,
): Promise<OtherInventories> {
  const items = await client.list(CONFIG_MAP, undefined, signal, `${INVENTORY_LABEL}=true`);
  const others: OtherInventories = { byOwner: new Map(), unreadable: new Map() };
  for (const item of items) {
    const owner = item.metadata.labels?.[ENVIRONMENT_LABEL];
    if (!owner || item.metadata.name !== inventoryName(owner)) continue;
    let inventory: Inventory & { home: string };
    const home = item.metadata.namespace ?? '';
    try {
      inventory = { ...parseInventory(item, { name: owner, namespace: home }), home };
    } catch (error) {
      if (owner !== environment)
        others.unreadable.set(owner, error instanceof Error ? error.message : String(error));
      continue;
    }
    if (owner !== environment) others.byOwner.set(owner, inventory);
    else if (!sameInstallation(inventory, installation))
      others.byOwner.set(`${owner} of another pushgate installation`, inventory);
  }
  return others;
}

/** An inventory of the environment found in a namespace other than its configured one. */
export interface InventoryElsewhere {
  namespace: string;
  uid: string | undefined;
  inventory: Inventory;
}

/** What pushgate's records say of the environment's inventories outside its namespace. */
export interface InventoriesLeft {
  found: InventoryElsewhere[];
  /** Recorded, but RBAC does not let this worker read there: kept on record, said on the job. */
  unreadable: string[];
}

/**
 * The environment's inventories left in `namespaces`: where its deploys wrote one before its
 * `namespace` setting changed, by pushgate's own record; one stamped by another installation
 * (a same-named environment that moved in since) is not among them. Flux and Argo CD keep
 * their inventory apart from the target namespace, so a new one prunes what the old one
 * applied; this makes pushgate do the same.
 */
export async function inventoriesLeftIn(
  client: ClusterClient,
  environment: InventoryEnvironment,
  namespaces: readonly string[],
  signal?: AbortSignal,
  installation?: string,
): Promise<InventoriesLeft> {
  const left: InventoriesLeft = { found: [], unreadable: [] };
  for (const namespace of namespaces) {
    if (namespace === environment.namespace) continue;
    let live: LiveObject | undefined;
    try {
      live = await client.get(CONFIG_MAP, namespace, inventoryName(environment.name), signal);
    } catch (error) {
      if (!(error instanceof KubeApiError && error.status === 403)) throw error;
      left.unreadable.push(namespace);
      continue;
    }
    if (!live) continue;
    const inventory = parseInventory(live, { name: environment.name, namespace });
    // Another installation's same-named environment may have moved in since: not ours to take.
    if (sameInstallation(inventory, installation))
      left.found.push({ namespace, uid: live.metadata.uid, inventory });
  }
  return left;
}

/** Deletes the inventory that was read (its uid), not one written there since. */
export async function deleteInventory(
  client: ClusterClient,
  environment: string,
  left: InventoryElsewhere,
  signal?: AbortSignal,
): Promise<void> {
  await client.delete(CONFIG_MAP, left.namespace, inventoryName(environment), left.uid, signal);
}

/** One inventory of all the refs of several, the first one's revision. */
export function mergeInventories(inventories: readonly Inventory[]): Inventory | undefined {
  const [first] = inventories;
  if (!first) return undefined;
  const byKey = new Map<string, ObjectRef>();
  for (const ref of inventories.flatMap((inventory) => inventory.objects)) {
    if (!byKey.has(refKey(ref))) byKey.set(refKey(ref), ref);
  }
  return { revision: first.revision, objects: [...byKey.values()] };
}

function parseInventory(live: LiveObject, environment: InventoryEnvironment): Inventory {
  const data = (live.data ?? {}) as Record<string, string>;
  const packed = ((live.binaryData ?? {}) as Record<string, string>)[PACKED_REFS_KEY];
  const plain = data[REFS_KEY] ?? '';
  const objects = parseRefLines(
    environment,
    REFS_KEY,
    packed !== undefined && plain.trim() === PACKED_MARKER ? '' : plain,
  );
  // A plain list beside the gzipped one is there only when someone else took over its
  // field: keep every ref, so nothing listed escapes prune.
  if (packed !== undefined) {
    for (const ref of parseRefLines(environment, PACKED_REFS_KEY, unpackRefs(environment, packed)))
      objects.push(ref);
  }
  const installation = live.metadata.annotations?.[INSTALLATION_ANNOTATION];
  return { revision: data.revision ?? '', objects, ...(installation ? { installation } : {}) };
}

function unpackRefs(environment: InventoryEnvironment, packed: string): string {
  try {
    return gunzipSync(Buffer.from(packed, 'base64'), { maxOutputLength: UNPACKED_REFS_MAX_BYTES }).toString(
      'utf8',
    );
  } catch (error) {
    throw inventoryError(
      environment,
      `${PACKED_REFS_KEY} is not a gzipped list of object refs of at most ${UNPACKED_REFS_MAX_BYTES / 1024 / 1024} MiB ` +
        `(${error instanceof Error ? error.message : String(error)}); ` +
        'fix or delete the ConfigMap (deleting it means objects applied before are no longer pruned)',
    );
  }
}

function parseRefLines(environment: InventoryEnvironment, key: string, text: string): ObjectRef[] {
  const objects: ObjectRef[] = [];
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  for (const [index, line] of lines.entries()) {
    let parsed: z.SafeParseReturnType<unknown, ObjectRef>;
    try {
      parsed = refSchema.safeParse(JSON.parse(line));
    } catch {
      parsed = refSchema.safeParse(undefined);
    }
    if (!parsed.success) {
      throw inventoryError(
        environment,
        `line ${index + 1} of ${key} is not an object ref; fix or delete the ConfigMap (deleting it means objects applied before are no longer pruned)`,
      );
    }
    objects.push(parsed.data);
  }
  return objects;
}

function tooLarge(environment: InventoryEnvironment, count: number, why: string): PushgateError {
  return new PushgateError(
    'apply_rejected',
    `${environment.name} holds ${count} objects (those its earlier deploys applied and it still lists included): ` +
      `${why}, for its inventory ConfigMap ${environment.namespace}/${inventoryName(environment.name)}; split the ` +
      'manifests into several environments. Nothing was changed',
    { permanent: true },
  );
}

/**
 * The inventory's data and binaryData: plain lines where they fit, gzipped where not. The
 * refs go in apply order whatever order they come in: gzip's size depends on it, and the
 * check before the dry-run must measure what the writes write.
 */
function inventoryData(
  environment: InventoryEnvironment,
  inventory: Inventory,
): { data: Record<string, string>; binaryData?: Record<string, string> } {
  const count = inventory.objects.length;
  const lines = [...inventory.objects]
    .sort(compareApplyOrder)
    .map((ref) => JSON.stringify(ref))
    .join('\n');
  const bytes = Buffer.byteLength(lines);
  // Other data: the revision, and room for the keys.
  const room = CONFIG_MAP_MAX_BYTES - Buffer.byteLength(inventory.revision) - 64;
  if (bytes <= room) return { data: { revision: inventory.revision, [REFS_KEY]: lines } };
  if (bytes > UNPACKED_REFS_MAX_BYTES)
    throw tooLarge(environment, count, `their list is ${bytes} bytes, more than pushgate reads back`);
  const packed = gzipSync(lines, { level: 9 });
  if (packed.length > room - PACKED_MARKER.length) {
    throw tooLarge(
      environment,
      count,
      `their list is ${packed.length} bytes gzipped, over the ${CONFIG_MAP_MAX_BYTES} bytes a ConfigMap holds`,
    );
  }
  return {
    data: { revision: inventory.revision, [REFS_KEY]: PACKED_MARKER },
    binaryData: { [PACKED_REFS_KEY]: packed.toString('base64') },
  };
}

/**
 * Refuses, before any write, a set whose inventory the API server would refuse: the
 * inventory is the first write of a deploy, so its refusal would come after the whole
 * set's dry-run, and every attempt would make it again. `objects`: what the deploy lists
 * (the set and what the inventory holds); `listed`: how many the inventory holds now. Only
 * a list that grows is held to the count, so one past it may still shrink.
 */
export function assertInventoryFits(
  environment: InventoryEnvironment,
  objects: readonly ObjectRef[],
  listed: number,
): void {
  if (objects.length > INVENTORY_MAX_OBJECTS && objects.length > listed)
    throw tooLarge(
      environment,
      objects.length,
      `more than the ${INVENTORY_MAX_OBJECTS} pushgate keeps a list of`,
    );
  inventoryData(environment, { revision: '0'.repeat(40), objects: [...objects] });
}

export function inventoryObject(
  environment: InventoryEnvironment,
  inventory: Inventory,
  installation?: string,
): LiveObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: inventoryName(environment.name),
      namespace: environment.namespace,
      ...(installation ? { annotations: { [INSTALLATION_ANNOTATION]: installation } } : {}),
      labels: {
        [ENVIRONMENT_LABEL]: environment.name,
        [INVENTORY_LABEL]: 'true',
        'app.kubernetes.io/managed-by': 'pushgate',
      },
    },
    ...inventoryData(environment, inventory),
  };
}

export async function writeInventory(
  client: ClusterClient,
  environment: InventoryEnvironment,
  inventory: Inventory,
  signal?: AbortSignal,
  installation?: string,
): Promise<void> {
  await client.apply(CONFIG_MAP, inventoryObject(environment, inventory, installation), { signal });
}

/** The inventory lives in the environment's namespace: fail before any write when it cannot. */
export async function inventoryNamespaceExists(
  client: ClusterClient,
  environment: InventoryEnvironment,
  signal?: AbortSignal,
): Promise<boolean> {
  return (await client.get(NAMESPACE, undefined, environment.namespace, signal)) !== undefined;
}

/** Version-independent identity: the same object whether written as v1beta1 or v1. */
export function refKey(ref: ObjectRef): string {
  return `${splitApiVersion(ref.apiVersion).group}|${ref.kind}|${ref.namespace ?? ''}|${ref.name}`;
}

export function sameRefs(a: readonly ObjectRef[], b: readonly ObjectRef[]): boolean {
  if (a.length !== b.length) return false;
  const exact = (ref: ObjectRef): string => `${ref.apiVersion}|${refKey(ref)}`;
  const keys = new Set(a.map(exact));
  return b.every((ref) => keys.has(exact(ref)));
}

import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PreparedObject } from '../manifests/prepare.js';
import type { ManifestObject } from '../manifests/types.js';
import type { ClusterClient, LiveObject } from './cluster.js';
import { KubeApiError } from './api-error.js';

/**
 * `pushgate.dev/force: enabled` on an object: when a change git makes to it is one the API
 * server refuses on a live object (an immutable field: a Job's pod template, a Service's
 * clusterIP, a Deployment's selector, most of a StatefulSet's spec), the object is deleted and
 * created again instead of failing the deploy, as Flux's `force` and Argo CD's `Replace=true`.
 */
export const FORCE_ANNOTATION = 'pushgate.dev/force';

/** How the API server words a change it accepts only on a new object. */
const IMMUTABLE_CHANGE =
  /field is immutable|may not change once set|is immutable after creation|updates to statefulset spec for fields other than/i;
/** How long a replaced object may take to go: its finalizers run first. */
const GONE_TIMEOUT_MS = 60_000;
const GONE_POLL_MS = 250;

/**
 * Never for a CustomResourceDefinition or a Namespace, whatever they say: deleting one deletes
 * every object of its kind or in it, other environments' too.
 */
export function forceEnabled(object: ManifestObject): boolean {
  if (object.kind === 'CustomResourceDefinition' || object.kind === 'Namespace') return false;
  return object.metadata.annotations?.[FORCE_ANNOTATION] === 'enabled';
}

/** A dry-run refusal that deleting and creating the object again would get past. */
export function isImmutableChange(error: unknown): boolean {
  return error instanceof KubeApiError && error.status === 422 && IMMUTABLE_CHANGE.test(error.message);
}

interface ServiceSpec {
  clusterIP?: string;
  clusterIPs?: string[];
  healthCheckNodePort?: number;
  ports?: { nodePort?: number; [field: string]: unknown }[];
  [field: string]: unknown;
}

const ALREADY_ALLOCATED = /already allocated/i;
const NODE_PORT_FIELD = /^spec\.ports\[(\d+)\]\.nodePort$/;
const CLUSTER_IP_FIELD = /^spec\.clusterIPs?(\[\d+\])?$/;
const HEALTH_CHECK_PORT_HELD = /HealthCheck NodePort (\d+): provided port is already allocated/;

/**
 * A Service's new version without the addresses a stand-in's check was refused for because
 * the live Service holds them (the delete before the replacement frees them), or undefined
 * when the refusal says anything else. The API server allocates before it validates, so the
 * check is made again without them. Only what the refusal names is dropped, and only where it
 * cannot hide a mistake of its own: a node port the new version sets once, the health check
 * node port, cluster IPs when every one it sets is the live Service's.
 */
function withoutHeldAddresses(
  object: ManifestObject,
  live: LiveObject,
  error: unknown,
): ManifestObject | undefined {
  if (object.kind !== 'Service' || object.apiVersion !== 'v1' || !(error instanceof KubeApiError))
    return undefined;
  const spec = object.spec as ServiceSpec | undefined;
  const liveSpec = live.spec as ServiceSpec | undefined;
  if (!spec || !liveSpec) return undefined;
  // Said as an internal error (500), with no field: only the port.
  const healthCheck = HEALTH_CHECK_PORT_HELD.exec(error.message)?.[1];
  if (healthCheck !== undefined) {
    const port = Number(healthCheck);
    if (spec.healthCheckNodePort !== port || liveSpec.healthCheckNodePort !== port) return undefined;
    const { healthCheckNodePort: _held, ...rest } = spec;
    return { ...object, spec: rest };
  }
  if (error.status !== 422 || error.causes.length === 0) return undefined;
  const liveIps = new Set([liveSpec.clusterIP, ...(liveSpec.clusterIPs ?? [])]);
  const liveNodePorts = new Set((liveSpec.ports ?? []).map((port) => port.nodePort));
  const next: ServiceSpec = { ...spec, ports: spec.ports?.map((port) => ({ ...port })) };
  for (const cause of error.causes) {
    if (!cause.field || !ALREADY_ALLOCATED.test(cause.message ?? '')) return undefined;
    const portIndex = NODE_PORT_FIELD.exec(cause.field)?.[1];
    if (portIndex !== undefined) {
      const value = spec.ports?.[Number(portIndex)]?.nodePort;
      const uses = (spec.ports ?? []).filter((port) => port.nodePort === value).length;
      if (value === undefined || !liveNodePorts.has(value) || uses !== 1) return undefined;
      delete next.ports![Number(portIndex)]!.nodePort;
    } else if (CLUSTER_IP_FIELD.test(cause.field)) {
      const ips = [spec.clusterIP, ...(spec.clusterIPs ?? [])].filter((ip) => ip !== undefined && ip !== '');
      if (ips.length === 0 || ips.some((ip) => ip === 'None' || !liveIps.has(ip))) return undefined;
      delete next.clusterIP;
      delete next.clusterIPs;
    } else {
      return undefined;
    }
  }
  return { ...object, spec: next };
}

/** Allocation refusals peeled off one by one: a node port, then another, then the IPs. */
const MAX_CHECKS = 8;

/**
 * Checks the new version of `object` as a creation (a server-side dry-run under a stand-in
 * name beside `live`: its own name is taken by the live object), so a replacement is validated
 * before any write like every other change. Throws the API server's refusal.
 */
export async function checkReplacement(
  client: ClusterClient,
  object: PreparedObject,
  live: LiveObject,
  signal?: AbortSignal,
): Promise<LiveObject> {
  const standIn = `pushgate-check-${randomBytes(4).toString('hex')}`;
  let checked = object.object;
  for (let round = 1; ; round += 1) {
    try {
      const asStandIn = { ...checked, metadata: { ...checked.metadata, name: standIn } };
      const created = await client.apply(object.resource, asStandIn, { dryRun: true, signal });
      // As the object would be created again, under its own name (`pushgate diff` shows it).
      return { ...created, metadata: { ...created.metadata, name: object.ref.name } };
    } catch (error) {
      const next = round < MAX_CHECKS ? withoutHeldAddresses(checked, live, error) : undefined;
      if (next) {
        checked = next;
        continue;
      }
      // The refusal names the stand-in; the user knows the object by its own name.
      if (error instanceof Error) error.message = error.message.split(standIn).join(object.ref.name);
      throw error;
    }
  }
}

/** Metadata the API server sets, which a create must not carry. */
const SERVER_SET_METADATA = new Set([
  'uid',
  'resourceVersion',
  'creationTimestamp',
  'generation',
  'managedFields',
  'selfLink',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
]);

/**
 * Creates the replaced object again as it was, after its new version could not be created
 * once it was deleted: the dry-run does not make every check a create does (a node port
 * outside the cluster's range passes it), and a failed replacement must not leave the object
 * gone. True when it is back (its addresses were freed by the delete).
 */
export async function restoreReplaced(
  client: ClusterClient,
  object: PreparedObject,
  live: LiveObject,
  signal?: AbortSignal,
): Promise<boolean> {
  const { status: _status, metadata, ...rest } = live as LiveObject & { status?: unknown };
  const kept = Object.fromEntries(Object.entries(metadata).filter(([key]) => !SERVER_SET_METADATA.has(key)));
  try {
    await client.apply(object.resource, { ...rest, metadata: kept } as ManifestObject, { signal });
    return true;
  } catch {
    return false;
  }
}

/** Deletes the live object (that exact one) and waits until it is gone, so it can be created again. */
export async function deleteForReplacement(
  client: ClusterClient,
  object: PreparedObject,
  live: LiveObject,
  signal?: AbortSignal,
): Promise<void> {
  const { resource, ref } = object;
  await client.delete(resource, ref.namespace, ref.name, live.metadata.uid, signal);
  const deadline = Date.now() + GONE_TIMEOUT_MS;
  for (;;) {
    const current = await client.get(resource, ref.namespace, ref.name, signal);
    if (!current || current.metadata.uid !== live.metadata.uid) return;
    if (Date.now() > deadline) {
      throw new Error(
        `deleted to be replaced (${FORCE_ANNOTATION}: enabled), but still there after ${GONE_TIMEOUT_MS / 1000}s ` +
          `(finalizers: ${(current.metadata as { finalizers?: string[] }).finalizers?.join(', ') ?? 'none'})`,
      );
    }
    await sleep(GONE_POLL_MS, undefined, { signal });
  }
}

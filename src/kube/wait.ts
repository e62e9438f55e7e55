import { setTimeout as sleep } from 'node:timers/promises';
import { ENVIRONMENT_LABEL, type PreparedObject } from '../manifests/prepare.js';
import { describeRef } from '../manifests/resource-info.js';
import type { ManifestObject } from '../manifests/types.js';
import type { ResourceResult } from '../status/job-record.js';
import type { ClusterClient, LiveObject } from './cluster.js';
import { hasSucceeded, isJob, isWorkload, readinessOf, type Readiness } from './health.js';
import { KubeApiError } from './api-error.js';
import { mapWithConcurrency } from './map-with-concurrency.js';
import { collectionPath } from './paths.js';
import { CONCURRENCY, listCrowdedCollections } from './plan.js';
import { DeployError } from './types.js';

const CRD_POLL_INTERVAL_MS = 100;
export const CRD_ESTABLISHED_TIMEOUT_MS = 60_000;

interface Condition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
}

function conditionsOf(object: Record<string, unknown> | undefined): Condition[] {
  const status = object?.status as { conditions?: Condition[] } | undefined;
  return Array.isArray(status?.conditions) ? status.conditions : [];
}

/** Waits until every CRD is `Established` (its kind is served); fails early when its names were refused. */
export async function waitForCrdsEstablished(
  client: ClusterClient,
  crds: readonly PreparedObject[],
  resources: () => ResourceResult[],
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + CRD_ESTABLISHED_TIMEOUT_MS;
  let pending = [...crds];
  for (;;) {
    const states = await mapWithConcurrency(pending, CONCURRENCY, async (crd) => {
      const live = await client.get(crd.resource, undefined, crd.ref.name, signal);
      const conditions = conditionsOf(live);
      const refused = conditions.find((c) => c.type === 'NamesAccepted' && c.status === 'False');
      if (refused) {
        throw new DeployError(
          'apply_rejected',
          `${describeRef(crd.ref)}: names not accepted: ${refused.message ?? refused.reason ?? ''}`,
          { permanent: true, resources: resources() },
        );
      }
      return conditions.some((c) => c.type === 'Established' && c.status === 'True');
    });
    pending = pending.filter((_, index) => !states[index]);
    if (pending.length === 0) return;
    if (Date.now() >= deadline) {
      throw new DeployError(
        'apply_rejected',
        `CustomResourceDefinitions not established after ${CRD_ESTABLISHED_TIMEOUT_MS / 1000}s: ${pending.map((crd) => crd.ref.name).join(', ')}`,
        { permanent: false, resources: resources() },
      );
    }
    await sleep(CRD_POLL_INTERVAL_MS, undefined, { signal });
  }
}

export interface UnhealthyObject {
  object: PreparedObject;
  readiness: Readiness;
}

/** What `question` answers within `ms` (or before `signal` aborts), else undefined. */
async function answerWithin(
  question: Promise<string | undefined>,
  ms: number,
  signal: AbortSignal | undefined,
): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const giveUp = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
    onAbort = () => resolve(undefined);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([question, giveUp]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

export interface ReadinessWait {
  /** Not ready when the wait ended (empty: all ready). */
  unhealthy: UnhealthyObject[];
  /** What `interrupt` answered, when it ended the wait early. */
  interruptedBy?: string;
}

export interface ReadinessWaitOptions {
  signal?: AbortSignal;
  /** After each poll, the objects not ready yet. */
  onPoll?: (pending: readonly UnhealthyObject[]) => void;
  /** Asked after each poll that leaves objects pending: a reason ends the wait at once. */
  interrupt?: () => Promise<string | undefined>;
  /** Called after each poll that leaves objects pending: what it throws ends the wait. */
  assertStillOurs?: () => Promise<void>;
}

const FIRST_POLL_INTERVAL_MS = 500;
/** Flux's kustomize-controller checks health this often, a whole wait long. */
const LAST_POLL_INTERVAL_MS = 5_000;
/** How often, at the most, objects found ready are read again: the others are read every round. */
const READY_RECHECK_MS = 5_000;
/** How often, at the least, `interrupt` is asked while the wait sleeps between rounds. */
const INTERRUPT_CHECK_MS = 1_000;

/**
 * The pause after a round: half a second at first, so a quick rollout is seen at once, then a
 * tenth of the time waited so far, up to 5 s. What becomes ready is seen at most about a tenth
 * of the wait later, and a stuck rollout costs a long wait some 80 rounds instead of 600.
 */
export function pollIntervalAfter(waitedMs: number): number {
  return Math.min(LAST_POLL_INTERVAL_MS, Math.max(FIRST_POLL_INTERVAL_MS, Math.round(waitedMs / 10)));
}

/**
 * Polls the objects until all are ready in the same round (as Flux's wait): one that was ready
 * may not stay so (a rollout that later exceeds its deadline). Rounds come further apart as the
 * wait goes on (pollIntervalAfter). Those found ready are read again every READY_RECHECK_MS
 * (300 ready workloads beside one stuck would cost 180,000 reads in a 5-minute wait), and all
 * of them in a last round once the rest are ready. Resolves with the ones not ready at the
 * deadline (empty: all ready); a failed one (progress deadline exceeded, Job failed, deleted
 * during the wait) ends the wait at once, and so does a reason from `interrupt`, asked at
 * least every INTERRUPT_CHECK_MS.
 */
export async function waitForReadiness(
  client: ClusterClient,
  objects: readonly PreparedObject[],
  timeoutMs: number,
  options: ReadinessWaitOptions = {},
): Promise<ReadinessWait> {
  const { signal } = options;
  const started = Date.now();
  const deadline = started + timeoutMs;
  // Each object as last found during this wait: one found before and gone now was deleted.
  const lastSeen = new Map<PreparedObject, LiveObject>();
  const latest = new Map<PreparedObject, Readiness>();
  // Applied with the environment's label: listing only those skips what else a namespace holds.
  const selector = environmentSelector(objects);
  let full = true;
  let fullAt = started;
  for (;;) {
    if (full) fullAt = Date.now();
    const polled = full ? objects : objects.filter((object) => latest.get(object)?.state !== 'ready');
    // A crowded collection (kind + namespace) costs one LIST a round instead of a GET an object.
    const collections = await listCrowdedCollections(client, polled, signal, selector);
    const entries = await mapWithConcurrency(
      polled,
      CONCURRENCY,
      async (object): Promise<UnhealthyObject> => {
        const { resource, ref } = object;
        try {
          const listed = collections.get(collectionPath(resource, ref.namespace));
          // Not in a labelled list (relabelled by hand since, say): read it to know.
          const live = listed?.get(ref.name) ?? (await client.get(resource, ref.namespace, ref.name, signal));
          if (live) lastSeen.set(object, live);
          const readiness = live ? readinessOf(live) : goneReadiness(lastSeen.get(object), object.object);
          return { object, readiness };
        } catch (error) {
          // A hiccup while polling is not a verdict on the object; the deadline still bounds the wait.
          if (error instanceof KubeApiError && error.transient) {
            return {
              object,
              readiness: { state: 'progressing', message: `status unavailable: ${error.message}` },
            };
          }
          throw error;
        }
      },
    );
    for (const { object, readiness } of entries) latest.set(object, readiness);
    const failed = entries.filter((entry) => entry.readiness.state === 'failed');
    if (failed.length > 0) return { unhealthy: failed };
    const pending = objects
      .map((object) => ({ object, readiness: latest.get(object) as Readiness }))
      .filter((entry) => entry.readiness.state !== 'ready');
    options.onPoll?.(pending);
    if (pending.length === 0 && full) return { unhealthy: [] };
    // The rest ready: every object once more, at once (past the deadline too), to see them all
    // ready together.
    if (pending.length === 0) {
      full = true;
      continue;
    }
    const now = Date.now();
    if (now >= deadline) return { unhealthy: pending };
    await options.assertStillOurs?.();
    const wakeAt = Math.min(deadline, now + pollIntervalAfter(now - started));
    const interruptedBy = await sleepUntil(wakeAt, deadline, options);
    if (interruptedBy !== undefined) return { unhealthy: pending, interruptedBy };
    // Now rather than a round later, if that one would come past READY_RECHECK_MS.
    const woke = Date.now();
    full = woke - fullAt + pollIntervalAfter(woke - started) > READY_RECHECK_MS;
  }
}

/**
 * Sleeps until `wakeAt`, asking `interrupt` first and then every INTERRUPT_CHECK_MS, so a
 * newer commit ends a long wait as soon as a short one; resolves with its reason if it gives one.
 */
async function sleepUntil(
  wakeAt: number,
  deadline: number,
  { interrupt, signal }: ReadinessWaitOptions,
): Promise<string | undefined> {
  for (;;) {
    // Bounded by the wait's own deadline and the shutdown signal: a git server that hangs
    // must not stretch the wait (or hold a stopping worker).
    const interruptedBy = interrupt
      ? await answerWithin(interrupt(), Math.max(0, deadline - Date.now()), signal)
      : undefined;
    if (interruptedBy !== undefined) return interruptedBy;
    signal?.throwIfAborted();
    const left = wakeAt - Date.now();
    if (left <= 0) return undefined;
    const slice = interrupt ? Math.min(left, INTERRUPT_CHECK_MS) : left;
    await sleep(slice, undefined, { signal });
    if (slice === left) return undefined;
  }
}

/** `pushgate.dev/environment=<name>`, when every object carries the same one. */
function environmentSelector(objects: readonly PreparedObject[]): string | undefined {
  const names = new Set(objects.map((object) => object.object.metadata.labels?.[ENVIRONMENT_LABEL]));
  const [name] = names;
  return names.size === 1 && name ? `${ENVIRONMENT_LABEL}=${name}` : undefined;
}

/**
 * An object not found: deleted since the deploy applied or compared it (every object of the
 * set, before the wait), and nothing but a deploy brings one back, so the wait fails at once.
 * `last`: the object as the wait last found it, if it did; `applied`: git's.
 */
export function goneReadiness(last: LiveObject | undefined, applied: ManifestObject): Readiness {
  // Its TTL controller removes a finished Job (ttlSecondsAfterFinished): seen succeeded, it is done.
  if (last && hasSucceeded(last)) return { state: 'ready', message: 'succeeded, then deleted' };
  const { ttlSecondsAfterFinished: ttl } = (applied.spec ?? {}) as { ttlSecondsAfterFinished?: unknown };
  const hint =
    isJob(applied) && typeof ttl === 'number'
      ? ` (its ttlSecondsAfterFinished: ${ttl} removes it once finished, before the wait could see how)`
      : '';
  if (last) return { state: 'failed', message: `deleted during the health wait${hint}` };
  // A custom resource may be missing from one API server of several while its CRD is new to
  // it (the same 404): the deadline decides there.
  if (!isWorkload(applied)) return { state: 'progressing', message: 'not found' };
  return { state: 'failed', message: `deleted before the health wait first read it${hint}` };
}

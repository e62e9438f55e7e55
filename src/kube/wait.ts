import { setTimeout as sleep } from 'node:timers/promises';
import type { PreparedObject } from '../manifests/prepare.js';
import { describeRef } from '../manifests/resource-info.js';
import type { ResourceResult } from '../status/job-record.js';
import type { ClusterClient } from './cluster.js';
import { readinessOf, type Readiness } from './health.js';
import { KubeApiError } from './api-error.js';
import { mapWithConcurrency } from './map-with-concurrency.js';
import { CONCURRENCY } from './plan.js';
import { DeployError } from './types.js';

const POLL_INTERVAL_MS = 500;
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

/**
 * Polls the objects until all are ready by kstatus rules. Resolves with the ones still not
 * ready at the deadline (empty: all ready); a failed one (progress deadline exceeded, Job
 * failed) ends the wait at once, and so does a reason from `interrupt`.
 */
export async function waitForReadiness(
  client: ClusterClient,
  objects: readonly PreparedObject[],
  timeoutMs: number,
  options: ReadinessWaitOptions = {},
): Promise<ReadinessWait> {
  const { signal } = options;
  const deadline = Date.now() + timeoutMs;
  let pending = objects.map((object): UnhealthyObject => ({
    object,
    readiness: { state: 'progressing', message: 'not checked yet' },
  }));
  for (;;) {
    pending = await mapWithConcurrency(pending, CONCURRENCY, async ({ object }) => {
      const { resource, ref } = object;
      try {
        const live = await client.get(resource, ref.namespace, ref.name, signal);
        const readiness: Readiness = live
          ? readinessOf(live)
          : { state: 'progressing', message: 'not found' };
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
    });
    const failed = pending.filter((entry) => entry.readiness.state === 'failed');
    if (failed.length > 0) return { unhealthy: failed };
    pending = pending.filter((entry) => entry.readiness.state !== 'ready');
    options.onPoll?.(pending);
    const remaining = deadline - Date.now();
    if (pending.length === 0 || remaining <= 0) return { unhealthy: pending };
    await options.assertStillOurs?.();
    // Bounded by the wait's own deadline and the shutdown signal: a git server that hangs
    // must not stretch the wait (or hold a stopping worker).
    const interruptedBy = options.interrupt
      ? await answerWithin(options.interrupt(), remaining, signal)
      : undefined;
    if (interruptedBy !== undefined) return { unhealthy: pending, interruptedBy };
    signal?.throwIfAborted();
    await sleep(Math.min(POLL_INTERVAL_MS, remaining), undefined, { signal });
  }
}

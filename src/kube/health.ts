import { counted } from '../lib/counted.js';
import { splitApiVersion } from '../manifests/resource-info.js';
import { FIELD_MANAGER } from './cluster.js';
import type { ObjectRef } from '../manifests/types.js';

export type ReadinessState = 'ready' | 'progressing' | 'failed';

export interface Readiness {
  state: ReadinessState;
  /** Why it is not ready yet, e.g. "1/2 replicas available". */
  message: string;
}

/**
 * Kinds whose readiness the deploy waits for (SPEC §4), by API group and kind: a custom
 * resource may reuse a kind (Volcano's batch.volcano.sh Job), and the rules of these do not fit it.
 */
const WORKLOAD_KINDS = new Set(['apps|Deployment', 'apps|StatefulSet', 'apps|DaemonSet', 'batch|Job']);

function workloadKey(apiVersion: string, kind: string): string {
  return `${splitApiVersion(apiVersion).group}|${kind}`;
}

/**
 * Custom resources too (a group with a dot, outside Kubernetes' own `*.k8s.io`): a Flux user
 * expects a cert-manager Certificate or a HelmRelease that never gets `Ready` to fail the
 * deploy, as kstatus rules it. One without conditions is ready once applied.
 */
export function isHealthChecked(ref: ObjectRef): boolean {
  return WORKLOAD_KINDS.has(workloadKey(ref.apiVersion, ref.kind)) || isCustomResource(ref);
}

function isCustomResource(ref: ObjectRef): boolean {
  const { group } = splitApiVersion(ref.apiVersion);
  return group.includes('.') && !group.endsWith('.k8s.io') && group !== 'k8s.io';
}

interface Condition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
  lastUpdateTime?: string;
}

type Obj = Record<string, unknown>;

function record(value: unknown): Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Obj) : {};
}

function int(value: unknown, fallback = 0): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function conditions(status: Obj): Condition[] {
  return Array.isArray(status.conditions) ? (status.conditions as Condition[]) : [];
}

function condition(status: Obj, type: string): Condition | undefined {
  return conditions(status).find((c) => c.type === type);
}

/** A condition's reason and message, as one line. */
function said(c: Condition): string {
  return [c.reason, c.message].filter(Boolean).join(': ');
}

const ready: Readiness = { state: 'ready', message: 'ready' };

function progressing(message: string): Readiness {
  return { state: 'progressing', message };
}

/** The controller has not seen the latest spec yet: nothing in status can be trusted. */
function notObserved(object: Obj): Readiness | undefined {
  const generation = int(record(object.metadata).generation);
  const observed = record(object.status).observedGeneration;
  if (typeof observed !== 'number') return progressing('not yet observed by its controller');
  if (observed < generation)
    return progressing(`controller has seen generation ${observed} of ${generation}`);
  return undefined;
}

/**
 * An object whose deletion has begun goes once its finalizers finish, whatever the apply just
 * wrote to it (and its controller may go on reporting it healthy until then): waiting on it
 * would only run out the timeout.
 */
function beingDeleted(object: Obj): Readiness | undefined {
  const metadata = record(object.metadata);
  if (typeof metadata.deletionTimestamp !== 'string' || metadata.deletionTimestamp === '') return undefined;
  const finalizers = Array.isArray(metadata.finalizers)
    ? metadata.finalizers.filter((name): name is string => typeof name === 'string')
    : [];
  const message =
    finalizers.length > 0
      ? `being deleted (finalizers: ${finalizers.join(', ')}): apply cannot keep it; it goes once its finalizers finish`
      : 'being deleted: apply cannot keep it';
  return { state: 'failed', message };
}

/**
 * Readiness by the kstatus rules Flux and Argo CD use, for the kinds a deploy waits on; any
 * other kind (a custom resource, whatever its kind is called) by its conditions.
 */
export function readinessOf(object: Obj): Readiness {
  const apiVersion = typeof object.apiVersion === 'string' ? object.apiVersion : '';
  const key = workloadKey(apiVersion, String(object.kind));
  // A Job that succeeded has done its work whatever comes next: its ttlSecondsAfterFinished
  // has the TTL controller delete it in the foreground, finalizer and all, while its pods go.
  if (key === 'batch|Job') {
    const success = jobSuccess(record(object.status));
    if (success) return success;
    // A failed one too is deleted so: its failure, not the deletion, is what to say.
    const failed = jobReadiness(object);
    if (failed.state === 'failed') return failed;
  }
  const deleting = beingDeleted(object);
  if (deleting) return deleting;
  switch (key) {
    case 'apps|Deployment':
      return deploymentReadiness(object);
    case 'apps|StatefulSet':
      return statefulSetReadiness(object);
    case 'apps|DaemonSet':
      return daemonSetReadiness(object);
    case 'batch|Job':
      return jobReadiness(object);
    default:
      return conditionReadiness(object);
  }
}

/**
 * kstatus's rules for any other kind: a spec its controller has not seen yet is in progress;
 * `Reconciling=True` is in progress; `Stalled=True` has failed; `Ready` decides when present;
 * with none of these (no controller writes status), ready.
 */
function conditionReadiness(object: Obj): Readiness {
  const status = record(object.status);
  const observed = status.observedGeneration;
  const generation = int(record(object.metadata).generation);
  if (typeof observed === 'number' && observed < generation)
    return progressing(`controller has seen generation ${observed} of ${generation}`);
  // A condition that carries its own observedGeneration (metav1.Condition) and is behind the
  // spec was written about an earlier one: a stall or a readiness the new spec has not earned.
  const isCurrent = (c: Condition): boolean => int(c.observedGeneration, generation) >= generation;
  // Reconciling before Stalled, as kstatus orders them: a controller still trying (a retry after
  // a stall) has not given up yet.
  const reconciling = condition(status, 'Reconciling');
  if (reconciling?.status === 'True' && isCurrent(reconciling))
    return progressing(`reconciling: ${said(reconciling) || 'no reason given'}`);
  const stalled = condition(status, 'Stalled');
  if (stalled?.status === 'True' && isCurrent(stalled))
    return { state: 'failed', message: `stalled: ${said(stalled) || 'no reason given'}` };
  const readyCondition = condition(status, 'Ready');
  if (readyCondition && !isCurrent(readyCondition))
    return progressing(
      `Ready condition is of generation ${int(readyCondition.observedGeneration)} of ${generation}`,
    );
  if (readyCondition && readyCondition.status !== 'True')
    return progressing(
      `Ready=${readyCondition.status ?? 'Unknown'}${said(readyCondition) ? `: ${said(readyCondition)}` : ''}`,
    );
  return ready;
}

/** When pushgate's apply last changed the object (its managedFields entry; second precision). */
function lastAppliedAt(object: Obj): number | undefined {
  const entries = record(object.metadata).managedFields;
  if (!Array.isArray(entries)) return undefined;
  const own = entries
    .map((entry) => record(entry))
    .find((entry) => entry.manager === FIELD_MANAGER && entry.operation === 'Apply' && !entry.subresource);
  const at = typeof own?.time === 'string' ? Date.parse(own.time) : NaN;
  return Number.isFinite(at) ? at : undefined;
}

/** Strictly before, by the API server's clock: the same second could be either. */
function writtenBefore(written: Condition, at: number | undefined): boolean {
  const updated = typeof written.lastUpdateTime === 'string' ? Date.parse(written.lastUpdateTime) : NaN;
  return at !== undefined && Number.isFinite(updated) && updated < at;
}

function deploymentReadiness(object: Obj): Readiness {
  // Generation first, as kstatus does: right after an apply the conditions are still those of
  // the previous rollout, and a deadline it exceeded says nothing about this one.
  const unobserved = notObserved(object);
  if (unobserved) return unobserved;
  const status = record(object.status);
  const stuck = condition(status, 'Progressing');
  if (stuck?.status === 'False' && stuck.reason === 'ProgressDeadlineExceeded') {
    // Written before pushgate's last change to it (a revert of a stuck rollout): the controller
    // can mark the generation observed before it takes up the new rollout and resets the
    // condition, and failing on it then would fail a revert that takes seconds. A new stall
    // writes the condition again, later than the apply.
    if (writtenBefore(stuck, lastAppliedAt(object)))
      return progressing(
        `the previous rollout exceeded its progress deadline; waiting for this one to start`,
      );
    return { state: 'failed', message: `progress deadline exceeded: ${stuck.message ?? 'rollout stalled'}` };
  }
  const spec = record(object.spec);
  // Paused is judged like any other, as kstatus does: pausing stops a rollout, it does not finish it.
  const paused = spec.paused === true;
  const waiting = rolloutWait(spec, status, paused);
  if (waiting === undefined) return ready;
  // The ReplicaSet could not create pods (a quota, an admission webhook): the counts alone do not say why.
  const failure = condition(status, 'ReplicaFailure');
  const why =
    failure?.status === 'True' ? `; ReplicaFailure=True: ${said(failure) || 'no reason given'}` : '';
  return progressing(`${paused ? 'paused (spec.paused): ' : ''}${waiting}${why}`);
}

/** What a Deployment's rollout still waits for, by its replica counts. */
function rolloutWait(spec: Obj, status: Obj, paused: boolean): string | undefined {
  const replicas = int(spec.replicas, 1);
  const updated = int(status.updatedReplicas);
  const available = int(status.availableReplicas);
  const current = int(status.replicas);
  if (updated < replicas)
    return `${updated}/${replicas} replicas ${paused ? 'on the new template' : 'updated'}`;
  if (current > replicas) return `${current - replicas} old replicas pending termination`;
  if (available < replicas) return `${available}/${replicas} replicas available`;
  return undefined;
}

function statefulSetReadiness(object: Obj): Readiness {
  const unobserved = notObserved(object);
  if (unobserved) return unobserved;
  const spec = record(object.spec);
  const status = record(object.status);
  const replicas = int(spec.replicas, 1);
  const readyReplicas = int(status.readyReplicas);
  const current = int(status.currentReplicas);
  const updated = int(status.updatedReplicas);
  if (readyReplicas < replicas) return progressing(`${readyReplicas}/${replicas} replicas ready`);
  // With minReadySeconds a pod counts once it has stayed ready that long, as for a Deployment
  // (kstatus and Argo CD stop at ready, so a pod that fails right after would pass).
  const minReadySeconds = int(spec.minReadySeconds);
  if (
    minReadySeconds > 0 &&
    typeof status.availableReplicas === 'number' &&
    status.availableReplicas < replicas
  )
    return progressing(
      `${status.availableReplicas}/${replicas} replicas available (ready for minReadySeconds ${minReadySeconds})`,
    );
  // A scale-down removes the highest ordinals one at a time, whatever the update strategy: until
  // they are gone the counts above still include them.
  const existing = int(status.replicas);
  if (existing > replicas) return progressing(`${existing - replicas} pods pending termination`);
  const strategy = record(spec.updateStrategy);
  if (strategy.type === 'OnDelete') return ready;
  // A partitioned rollout (a canary) updates only the pods from the partition up: the rest
  // stay at the current revision by design, so kstatus counts it done once those are updated.
  const partition = int(record(strategy.rollingUpdate).partition);
  if (partition > 0) {
    const expected = Math.max(0, replicas - partition);
    if (updated < expected)
      return progressing(`${updated}/${expected} replicas updated (partition ${partition})`);
    return ready;
  }
  if (updated < replicas) return progressing(`${updated}/${replicas} replicas updated`);
  if (current < replicas) return progressing(`${current}/${replicas} replicas at the current revision`);
  if (status.currentRevision !== status.updateRevision) {
    return progressing(`rolling out revision ${String(status.updateRevision)}`);
  }
  return ready;
}

function daemonSetReadiness(object: Obj): Readiness {
  const unobserved = notObserved(object);
  if (unobserved) return unobserved;
  const status = record(object.status);
  const desired = int(status.desiredNumberScheduled);
  const updated = int(status.updatedNumberScheduled);
  const available = int(status.numberAvailable);
  // As for a StatefulSet: OnDelete replaces a pod only once someone deletes it, so waiting for
  // updated pods would fail this deploy and every later one until each pod is deleted by hand.
  if (record(record(object.spec).updateStrategy).type === 'OnDelete') {
    return available < desired ? progressing(`${available}/${desired} pods available`) : ready;
  }
  if (updated < desired) return progressing(`${updated}/${desired} pods updated`);
  if (available < desired) return progressing(`${available}/${desired} pods available`);
  return ready;
}

/** A Deployment, StatefulSet, DaemonSet or Job (of Kubernetes' own groups). */
export function isWorkload(object: Obj): boolean {
  return (
    typeof object.apiVersion === 'string' &&
    WORKLOAD_KINDS.has(workloadKey(object.apiVersion, String(object.kind)))
  );
}

export function isJob(object: Obj): boolean {
  return (
    typeof object.apiVersion === 'string' &&
    workloadKey(object.apiVersion, String(object.kind)) === 'batch|Job'
  );
}

/** A batch Job that succeeded: Complete, or SuccessCriteriaMet on its way there (see jobSuccess). */
export function hasSucceeded(object: Obj): boolean {
  return isJob(object) && jobSuccess(record(object.status)) !== undefined;
}

/**
 * A Job's success, once its controller has settled it. Since Kubernetes 1.31 the controller
 * sets SuccessCriteriaMet=True first (completions reached, or a successPolicy met) and
 * Complete=True only once every pod has terminated, which for the lingering pods a
 * successPolicy stops takes their grace period. The outcome is final from the first: the API
 * server refuses to turn SuccessCriteriaMet=True off or to set it beside Failed or
 * FailureTarget, as it refuses Complete beside FailureTarget (the same holds for failures).
 */
function jobSuccess(status: Obj): Readiness | undefined {
  if (condition(status, 'Complete')?.status === 'True') return ready;
  if (condition(status, 'SuccessCriteriaMet')?.status === 'True')
    return {
      state: 'ready',
      message: 'succeeded (SuccessCriteriaMet; Complete follows once its pods have terminated)',
    };
  return undefined;
}

/** How the readiness of a Job its controller marked failed begins. */
export const JOB_FAILED = 'failed: ';

/** A Job not succeeded yet (readinessOf has judged its success, deletion or not). */
function jobReadiness(object: Obj): Readiness {
  const status = record(object.status);
  const failedPods = int(status.failed);
  // FailureTarget (Kubernetes 1.31+) settles the outcome; Failed follows once its pods have
  // terminated, which may take their whole grace period.
  const failed = [condition(status, 'FailureTarget'), condition(status, 'Failed')].find(
    (c) => c?.status === 'True',
  );
  if (failed) {
    const pods = failedPods > 0 ? ` (${counted(failedPods, 'failed pod')})` : '';
    return {
      state: 'failed',
      message: `${JOB_FAILED}${failed.message ?? failed.reason ?? 'job failed'}${pods}`,
    };
  }
  // Suspended by design (a queue such as Kueue admits it later): waiting for it to complete would
  // run out the timeout. spec.suspend decides when set: a Job just resumed still carries
  // Suspended=True until its controller catches up, and it runs now.
  const { suspend } = record(object.spec);
  const suspendedCondition = condition(status, 'Suspended')?.status === 'True';
  if (suspend === true || (suspend === undefined && suspendedCondition)) {
    return { state: 'ready', message: 'suspended' };
  }
  // Failed pods tell a Job retrying towards its backoffLimit from one that is merely slow.
  return progressing(
    `not complete (${int(status.succeeded)} succeeded, ${int(status.active)} active, ${failedPods} failed)`,
  );
}

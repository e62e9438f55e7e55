import { splitApiVersion, type ResourceInfo } from '../manifests/resource-info.js';
import type { ManifestObject } from '../manifests/types.js';
import type { ClusterClient, LiveObject } from './cluster.js';

const PODS: ResourceInfo = { group: '', version: 'v1', kind: 'Pod', plural: 'pods', namespaced: true };

/** Pods named in a message: enough to say why, short enough for a commit status. */
const PODS_NAMED = 2;
/** Pods read at most, one page. */
const PODS_READ = 100;
const REASON_CHARS = 160;

type Obj = Record<string, unknown>;

function record(value: unknown): Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Obj) : {};
}

function list(value: unknown): Obj[] {
  return Array.isArray(value) ? value.map(record) : [];
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

function shortened(value: string): string {
  const line = value.replace(/\s+/g, ' ');
  return line.length > REASON_CHARS ? `${line.slice(0, REASON_CHARS - 1)}…` : line;
}

/** `key=value,key in (a,b),!key`: a label selector as the API takes it in a query. */
export function selectorQuery(selector: unknown): string | undefined {
  const { matchLabels, matchExpressions } = record(selector);
  const terms = Object.entries(record(matchLabels)).map(([key, value]) => `${key}=${String(value)}`);
  for (const expression of list(matchExpressions)) {
    const key = text(expression.key);
    const values = Array.isArray(expression.values) ? expression.values.map(String).join(',') : '';
    if (key === undefined) return undefined;
    switch (expression.operator) {
      case 'In':
        terms.push(`${key} in (${values})`);
        break;
      case 'NotIn':
        terms.push(`${key} notin (${values})`);
        break;
      case 'Exists':
        terms.push(key);
        break;
      case 'DoesNotExist':
        terms.push(`!${key}`);
        break;
      default:
        return undefined;
    }
  }
  // An empty selector matches every pod of the namespace: nothing to learn from them.
  return terms.length > 0 ? terms.join(',') : undefined;
}

/** A Deployment, StatefulSet, DaemonSet or Job: a workload whose pods say why it is not ready. */
export function hasPods(object: ManifestObject): boolean {
  return podSelector(object) !== undefined;
}

/** The pods a workload owns, as a selector: its own, or a Job's `job-name` label (its selector is generated). */
function podSelector(workload: ManifestObject): string | undefined {
  const { group } = splitApiVersion(workload.apiVersion);
  if (group === 'batch' && workload.kind === 'Job') return `job-name=${workload.metadata.name}`;
  if (group !== 'apps' || !['Deployment', 'StatefulSet', 'DaemonSet'].includes(workload.kind))
    return undefined;
  return selectorQuery(record(workload.spec).selector);
}

function containerProblem(status: Obj): string | undefined {
  if (status.ready === true) return undefined;
  const name = text(status.name) ?? 'container';
  const state = record(status.state);
  const waiting = record(state.waiting);
  const terminated = record(state.terminated);
  const last = record(record(status.lastState).terminated);
  const exit = (of: Obj) => (typeof of.exitCode === 'number' ? ` (exit code ${of.exitCode})` : '');
  const reason = text(waiting.reason);
  // Starting normally: not a reason, unless nothing else is.
  if (reason !== undefined && reason !== 'ContainerCreating' && reason !== 'PodInitializing') {
    const message = text(waiting.message);
    const lastExit = text(last.reason) ? `; last exit ${text(last.reason)}${exit(last)}` : '';
    return `${name}: ${reason}${message ? `: ${message}` : ''}${lastExit}`;
  }
  // Not its message: that is the container's own termination message, or with
  // FallbackToLogsOnError the tail of its log, which may hold anything (a connection string).
  const ended = text(terminated.reason);
  if (ended !== undefined && ended !== 'Completed') return `${name}: ${ended}${exit(terminated)}`;
  return undefined;
}

/** Why one pod is not ready, from its status; undefined when it is, or says nothing. */
export function podProblem(pod: LiveObject): string | undefined {
  const status = record(pod.status);
  const conditions = list(status.conditions);
  if (status.phase === 'Succeeded') return undefined;
  // Its containers then read ContainerStatusUnknown: the eviction is what happened.
  if (status.reason === 'Evicted') return `Evicted${text(status.message) ? `: ${text(status.message)}` : ''}`;
  const ready = conditions.find((condition) => condition.type === 'Ready');
  if (status.phase === 'Running' && ready?.status === 'True') return undefined;
  const unscheduled = conditions.find(
    (condition) => condition.type === 'PodScheduled' && condition.status === 'False',
  );
  if (unscheduled) {
    const reason = text(unscheduled.reason) ?? 'not scheduled';
    const message = text(unscheduled.message);
    return `${reason}${message ? `: ${message}` : ''}`;
  }
  const containers = [...list(status.initContainerStatuses), ...list(status.containerStatuses)];
  for (const container of containers) {
    const problem = containerProblem(container);
    if (problem !== undefined) return problem;
  }
  const reason = text(status.reason);
  if (reason !== undefined) return `${reason}${text(status.message) ? `: ${text(status.message)}` : ''}`;
  return undefined;
}

/**
 * Why a workload's pods are not ready, as its controller's counts cannot say (an image that
 * cannot be pulled, a crash loop, no node that fits): `pod web-7d4b9-x2x8q: app: ImagePullBackOff:
 * …`, for the first PODS_NAMED pods that say something. Undefined when none does, or the pods
 * cannot be read (RBAC without `list` on pods): the counts alone are still right.
 */
export async function podProblems(
  client: ClusterClient,
  workload: ManifestObject,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const selector = podSelector(workload);
  const namespace = workload.metadata.namespace;
  if (selector === undefined || namespace === undefined) return undefined;
  let pods: LiveObject[];
  try {
    // One page: a DaemonSet of thousands of nodes must not load them all to name two.
    pods = await client.list(PODS, namespace, signal, selector, PODS_READ);
  } catch {
    signal?.throwIfAborted();
    return undefined;
  }
  // Pods of a Deployment's older ReplicaSets and leftovers of earlier failures match too:
  // the newest first, so the rollout's own come before them.
  const createdAt = (pod: LiveObject): string => text(pod.metadata.creationTimestamp) ?? '';
  const newestFirst = [...pods].sort((a, b) => createdAt(b).localeCompare(createdAt(a)));
  const problems = newestFirst.flatMap((pod) => {
    const problem = podProblem(pod);
    return problem === undefined ? [] : [`pod ${pod.metadata.name}: ${shortened(problem)}`];
  });
  if (problems.length === 0) return undefined;
  const more = problems.length - PODS_NAMED;
  const ofRead = pods.length === PODS_READ ? ` of the first ${PODS_READ} read` : '';
  return (
    problems.slice(0, PODS_NAMED).join('; ') + (more > 0 ? `; ${more} more pods not ready${ofRead}` : '')
  );
}

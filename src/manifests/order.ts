/**
 * Apply order by kind, in the spirit of Helm's install order and Flux's ssa sort: what
 * others refer to (namespaces, policies, identities, configuration, storage, definitions,
 * RBAC) before what uses it (services, workloads), admission webhooks last so a webhook
 * defined in the same set cannot reject its own backing Deployment.
 */
const KIND_ORDER = [
  'PriorityClass',
  'Namespace',
  'NetworkPolicy',
  'ResourceQuota',
  'LimitRange',
  'PodSecurityPolicy',
  'PodDisruptionBudget',
  'ServiceAccount',
  'Secret',
  'SecretList',
  'ConfigMap',
  'StorageClass',
  'PersistentVolume',
  'PersistentVolumeClaim',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleList',
  'ClusterRoleBinding',
  'ClusterRoleBindingList',
  'Role',
  'RoleList',
  'RoleBinding',
  'RoleBindingList',
  'Service',
  'DaemonSet',
  'Pod',
  'ReplicationController',
  'ReplicaSet',
  'Deployment',
  'HorizontalPodAutoscaler',
  'StatefulSet',
  'Job',
  'CronJob',
  'IngressClass',
  'Ingress',
  'APIService',
] as const;

/** Kinds that are neither built in nor listed: custom resources, usually served by what came before. */
const UNKNOWN_KIND_RANK = KIND_ORDER.length;
/** After everything, even custom resources. */
const WEBHOOK_KINDS = [
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
];

const RANKS = new Map<string, number>(KIND_ORDER.map((kind, index) => [kind, index]));

export function kindRank(kind: string): number {
  const rank = RANKS.get(kind);
  if (rank !== undefined) return rank;
  const webhook = WEBHOOK_KINDS.indexOf(kind);
  if (webhook >= 0) return UNKNOWN_KIND_RANK + 1 + webhook;
  return UNKNOWN_KIND_RANK;
}

export type ApplyStage = 1 | 2;

/** Stage 1 is what other objects need to exist before they can even be validated. */
export function applyStage(apiVersion: string, kind: string): ApplyStage {
  if (kind === 'Namespace' && apiVersion === 'v1') return 1;
  if (kind === 'CustomResourceDefinition' && apiVersion.startsWith('apiextensions.k8s.io/')) return 1;
  return 2;
}

interface Orderable {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** A total order: kind rank, then kind, namespace and name so runs are reproducible. */
export function compareApplyOrder(a: Orderable, b: Orderable): number {
  return (
    kindRank(a.kind) - kindRank(b.kind) ||
    compareStrings(a.kind, b.kind) ||
    compareStrings(a.namespace ?? '', b.namespace ?? '') ||
    compareStrings(a.name, b.name) ||
    compareStrings(a.apiVersion, b.apiVersion)
  );
}

function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

/** Consecutive runs of equal kind rank: each run may be applied in parallel, runs in order. */
export function groupByRank<T extends Orderable>(sorted: readonly T[]): T[][] {
  const groups: T[][] = [];
  let lastRank = -1;
  for (const item of sorted) {
    const rank = kindRank(item.kind);
    const current = groups.at(-1);
    if (current && rank === lastRank) {
      current.push(item);
    } else {
      groups.push([item]);
      lastRank = rank;
    }
  }
  return groups;
}

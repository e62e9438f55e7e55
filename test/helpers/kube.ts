import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1Deployment,
} from '@kubernetes/client-node';
import { inject } from 'vitest';
import type { KubeRequest } from '../../src/kube/http.js';
import type { ResourceInfo } from '../../src/manifests/resource-info.js';

/** Path of the admin kubeconfig that test/global-setup.ts wrote for this run. */
export function kubeconfigPathFromTest(): string {
  const kubeconfigPath = inject('kubeconfig') ?? process.env.PUSHGATE_TEST_KUBECONFIG;
  if (!kubeconfigPath) {
    throw new Error(
      'no test kube-apiserver: run the tests through vitest with globalSetup test/global-setup.ts ' +
        '(or set PUSHGATE_TEST_KUBECONFIG)',
    );
  }
  return kubeconfigPath;
}

export function kubeConfigFromTest(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPathFromTest());
  return kc;
}

export interface TestNamespace {
  name: string;
  /**
   * Deletes the namespace. There is no kube-controller-manager, so it stays Terminating
   * with its contents; names are unique per test, so nothing is ever reused.
   */
  cleanup(): Promise<void>;
}

/** A DNS-1123 label: the prefix, cleaned up, plus a random suffix. */
export function uniqueNamespaceName(prefix: string): string {
  const cleaned = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 50);
  return `${cleaned || 'test'}-${randomBytes(4).toString('hex')}`;
}

export async function createTestNamespace(
  prefix: string,
  kc: KubeConfig = kubeConfigFromTest(),
): Promise<TestNamespace> {
  const core = kc.makeApiClient(CoreV1Api);
  const name = uniqueNamespaceName(prefix);
  await core.createNamespace({
    body: { metadata: { name, labels: { 'pushgate.dev/test': 'true' } } },
  });
  return {
    name,
    cleanup: async () => {
      await core.deleteNamespace({ name }).catch((error: unknown) => {
        if ((error as { code?: number }).code !== 404) throw error;
      });
    },
  };
}

/** A new ServiceAccount in `namespace` and a token for it (TokenRequest, an hour), bound to nothing. */
export async function serviceAccountToken(
  namespace: string,
  prefix: string,
): Promise<{ name: string; token: string }> {
  const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
  const name = uniqueNamespaceName(prefix);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  const request = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = request.status?.token;
  if (!token) throw new Error(`no token for ServiceAccount ${namespace}/${name}`);
  return { name, token };
}

/** Who the API server takes a client for (`kubectl auth whoami`): a SelfSubjectReview. */
export async function whoAmI(client: {
  request<T>(req: KubeRequest): Promise<{ body: T }>;
}): Promise<UserInfo> {
  const response = await client.request<{ status?: { userInfo?: UserInfo } }>({
    method: 'POST',
    path: '/apis/authentication.k8s.io/v1/selfsubjectreviews',
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  });
  return response.body.status?.userInfo ?? {};
}

export interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/** Namespaces, for ClusterClient reads in tests. */
export const NAMESPACES: ResourceInfo = {
  group: '',
  version: 'v1',
  kind: 'Namespace',
  plural: 'namespaces',
  namespaced: false,
};

/** ConfigMaps, for ClusterClient reads and writes in tests. */
export const CONFIG_MAPS: ResourceInfo = {
  group: '',
  version: 'v1',
  kind: 'ConfigMap',
  plural: 'configmaps',
  namespaced: true,
};

/** No kubelet here: the test plays the controller and reports the Deployment ready. */
export async function markDeploymentReady(namespace: string, name: string): Promise<void> {
  const apps = kubeConfigFromTest().makeApiClient(AppsV1Api);
  const current: V1Deployment = await apps.readNamespacedDeployment({ name, namespace });
  current.status = {
    observedGeneration: current.metadata?.generation,
    replicas: 1,
    updatedReplicas: 1,
    readyReplicas: 1,
    availableReplicas: 1,
    conditions: [
      { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'ok' },
      { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: 'ok' },
    ],
  };
  await apps.replaceNamespacedDeploymentStatus({ name, namespace, body: current });
}

/**
 * A kubeconfig for a ServiceAccount bound by RoleBindings in `namespaces` only, to `rules`:
 * the worker as the shipped namespaced RBAC runs it (nothing cluster-wide). Written into
 * `dir`; the ClusterRole it needs is deleted by the returned cleanup.
 */
export async function namespacedKubeconfig(
  dir: string,
  namespaces: readonly string[],
  rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[],
): Promise<{ path: string; token: string; cleanup(): Promise<void> }> {
  const kc = kubeConfigFromTest();
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const [home] = namespaces;
  if (!home) throw new Error('namespacedKubeconfig needs a namespace');
  const name = uniqueNamespaceName('pushgate-namespaced');
  await core.createNamespacedServiceAccount({ namespace: home, body: { metadata: { name } } });
  await rbac.createClusterRole({ body: { metadata: { name }, rules } });
  for (const namespace of namespaces) {
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
        subjects: [{ kind: 'ServiceAccount', name, namespace: home }],
      },
    });
  }
  const request = await core.createNamespacedServiceAccountToken({
    name,
    namespace: home,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = request.status?.token;
  const cluster = kc.getCurrentCluster();
  if (!token || !cluster) throw new Error('no ServiceAccount token or cluster in the test kubeconfig');
  const restricted = new KubeConfig();
  restricted.loadFromOptions({
    clusters: [cluster],
    users: [{ name, token }],
    contexts: [{ name, cluster: cluster.name, user: name }],
    currentContext: name,
  });
  const file = path.join(dir, `${name}.kubeconfig`);
  await writeFile(file, restricted.exportConfig(), { mode: 0o600 });
  return {
    path: file,
    token,
    cleanup: async () => {
      await rbac.deleteClusterRole({ name });
    },
  };
}

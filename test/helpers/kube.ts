import { randomBytes } from 'node:crypto';
import { AppsV1Api, CoreV1Api, KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { inject } from 'vitest';
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

/** Namespaces, for ClusterClient reads in tests. */
export const NAMESPACES: ResourceInfo = {
  group: '',
  version: 'v1',
  kind: 'Namespace',
  plural: 'namespaces',
  namespaced: false,
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

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import {
  ApiextensionsV1Api,
  AppsV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  VersionApi,
  type KubeConfig,
  type KubernetesObject,
  type V1ConfigMap,
  type V1CustomResourceDefinition,
  type V1Deployment,
  type V1Service,
} from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createTestNamespace,
  kubeConfigFromTest,
  kubeconfigPathFromTest,
  type TestNamespace,
} from '../helpers/kube.js';

const execFileAsync = promisify(execFile);
const fieldManager = 'pushgate';
const poll = { timeout: 30_000, interval: 100 };

function apply<T extends KubernetesObject>(
  objects: KubernetesObjectApi,
  object: T,
  dryRun?: 'All',
): Promise<T> {
  return objects.patch(object, undefined, dryRun, fieldManager, true, PatchStrategy.ServerSideApply);
}

describe('local control plane (real kube-apiserver + etcd)', () => {
  let kc: KubeConfig;
  let objects: KubernetesObjectApi;
  let namespace: TestNamespace;

  beforeEach(async (context) => {
    kc = kubeConfigFromTest();
    objects = KubernetesObjectApi.makeApiClient(kc);
    namespace = await createTestNamespace(`cp-${context.task.name.slice(0, 20)}`, kc);
  });

  afterEach(async () => {
    await namespace.cleanup();
  });

  it('serves /version as a real Kubernetes release', async () => {
    const version = await kc.makeApiClient(VersionApi).getCode();

    expect(version.gitVersion).toMatch(/^v1\.3\d+\.\d+$/);
    expect(version.major).toBe('1');
    expect(version.gitTreeState).toBe('clean');
  });

  it('stores a server-side applied ConfigMap and records the field manager', async () => {
    const configMap: V1ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'settings', namespace: namespace.name },
      data: { greeting: 'hello' },
    };

    await apply(objects, configMap);
    const stored = await objects.read<V1ConfigMap>({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'settings', namespace: namespace.name },
    });

    expect(stored.data).toEqual({ greeting: 'hello' });
    expect(stored.metadata?.managedFields).toContainEqual(
      expect.objectContaining({ manager: fieldManager, operation: 'Apply' }),
    );
  });

  it('rejects an invalid object on server-side dry-run and stores nothing', async () => {
    const service: V1Service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: namespace.name },
      spec: { selector: { app: 'web' }, ports: [{ port: 99999 }] },
    };

    await expect(apply(objects, service, 'All')).rejects.toMatchObject({ code: 422 });
    await expect(
      objects.read<V1Service>(service as V1Service & { metadata: { name: string } }),
    ).rejects.toMatchObject({
      code: 404,
    });
  });

  it('returns a valid object on server-side dry-run without storing it', async () => {
    const configMap: V1ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'dry', namespace: namespace.name },
      data: { a: '1' },
    };

    const answer = await apply(objects, configMap, 'All');

    expect(answer.data).toEqual({ a: '1' });
    await expect(
      objects.read<V1ConfigMap>({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'dry', namespace: namespace.name },
      }),
    ).rejects.toMatchObject({ code: 404 });
  });

  it('establishes a CustomResourceDefinition and serves its resources', async () => {
    const extensions = kc.makeApiClient(ApiextensionsV1Api);
    // CRDs are cluster-scoped and the cluster is shared by the run: a unique group per test.
    const group = `t${randomBytes(4).toString('hex')}.pushgate.dev`;
    const crd: V1CustomResourceDefinition = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `widgets.${group}` },
      spec: {
        group,
        scope: 'Namespaced',
        names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } },
              },
            },
          },
        ],
      },
    };

    await extensions.createCustomResourceDefinition({ body: crd });
    try {
      await vi.waitFor(async () => {
        const current = await extensions.readCustomResourceDefinition({ name: `widgets.${group}` });
        const established = current.status?.conditions?.find((condition) => condition.type === 'Established');
        expect(established?.status).toBe('True');
      }, poll);

      const widget = {
        apiVersion: `${group}/v1`,
        kind: 'Widget',
        metadata: { name: 'small', namespace: namespace.name },
        spec: { size: 3 },
      };
      // Discovery of a new group can lag a moment behind Established.
      await vi.waitFor(() => apply(objects, widget), poll);
      const stored = await objects.read<typeof widget>(widget);
      expect(stored.spec).toEqual({ size: 3 });
    } finally {
      await extensions.deleteCustomResourceDefinition({ name: `widgets.${group}` });
    }
  });

  it('records Deployment readiness written through the status subresource', async () => {
    const apps = kc.makeApiClient(AppsV1Api);
    const deployment: V1Deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: namespace.name },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: { containers: [{ name: 'web', image: 'registry.example/web:1.0.0' }] },
        },
      },
    };
    const applied = await apply(objects, deployment);

    // No kubelet or controller-manager here: the test plays the Deployment controller.
    await apps.replaceNamespacedDeploymentStatus({
      name: 'web',
      namespace: namespace.name,
      body: {
        ...applied,
        status: {
          observedGeneration: applied.metadata?.generation ?? 1,
          replicas: 2,
          updatedReplicas: 2,
          readyReplicas: 2,
          availableReplicas: 2,
          conditions: [{ type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' }],
        },
      },
    });
    const stored = await apps.readNamespacedDeployment({ name: 'web', namespace: namespace.name });

    expect(stored.status?.readyReplicas).toBe(2);
    expect(stored.status?.observedGeneration).toBe(stored.metadata?.generation);
    expect(stored.spec?.replicas).toBe(2);
  });

  it('answers kubectl with the admin kubeconfig', async () => {
    const { stdout } = await execFileAsync('kubectl', [
      '--kubeconfig',
      kubeconfigPathFromTest(),
      'get',
      'namespaces',
      '-o',
      'name',
    ]);

    expect(stdout.split('\n')).toContain(`namespace/${namespace.name}`);
  });
});

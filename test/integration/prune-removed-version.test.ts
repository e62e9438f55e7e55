import { randomBytes } from 'node:crypto';
import { ApiextensionsV1Api, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { environmentSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/lib/logger.js';
import { closeClusterClients, createClusterClient } from '../../src/kube/cluster.js';
import { deployToCluster } from '../../src/kube/deploy.js';
import type { DeployRequest } from '../../src/kube/types.js';
import type { ResourceInfo } from '../../src/manifests/resource-info.js';
import { createTestNamespace, kubeConfigFromTest, kubeconfigPathFromTest } from '../helpers/kube.js';

afterAll(() => closeClusterClients());

function widgetCrd(group: string, alphaServed: boolean): V1CustomResourceDefinition {
  const schema = {
    openAPIV3Schema: {
      type: 'object',
      properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } },
    },
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `widgets.${group}` },
    spec: {
      group,
      scope: 'Namespaced',
      names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
      versions: [
        { name: 'v1alpha1', served: alphaServed, storage: false, schema },
        { name: 'v1', served: true, storage: true, schema },
      ],
    },
  };
}

describe('prune of an object whose API version the cluster stopped serving', () => {
  it('finds it under another version of its group and deletes it, instead of forgetting it', async () => {
    const ns = await createTestNamespace('prune-removed-version');
    const group = `t${randomBytes(4).toString('hex')}.pushgate.dev`;
    const environment = environmentSchema.parse({
      name: `removed-version-${randomBytes(3).toString('hex')}`,
      repo: { provider: 'github', name: 'acme/env', url: 'file:///nowhere' },
      branch: 'env/test',
      cluster: 'test',
      namespace: ns.name,
      allow: { namespaces: [ns.name], clusterScoped: false },
      healthTimeout: 0,
      allowEmpty: true,
    });
    const kube = createClusterClient({ name: 'test', kubeconfig: kubeconfigPathFromTest() });
    const request = (objects: Record<string, unknown>[]): DeployRequest => ({
      environment,
      manifests: objects.map((object, index) => ({
        object: object as DeployRequest['manifests'][number]['object'],
        source: { file: 'app.yaml', document: index + 1 },
      })),
      sha: randomBytes(20).toString('hex'),
      jobId: 'job-1',
      logger: silentLogger(),
      assertLockHeld: () => Promise.resolve(),
    });
    const widgetsV1: ResourceInfo = {
      group,
      version: 'v1',
      kind: 'Widget',
      plural: 'widgets',
      namespaced: true,
    };
    const poll = { timeout: 15_000, interval: 200 };

    // The CRD belongs to the cluster (an add-on), not to this environment.
    const extensions = kubeConfigFromTest().makeApiClient(ApiextensionsV1Api);
    await extensions.createCustomResourceDefinition({ body: widgetCrd(group, true) });
    try {
      const widget = {
        apiVersion: `${group}/v1alpha1`,
        kind: 'Widget',
        metadata: { name: 'w' },
        spec: { size: 1 },
      };
      await vi.waitFor(() => deployToCluster(kube, request([widget])), poll);
      expect(await kube.get(widgetsV1, ns.name, 'w')).toBeDefined();

      // A cluster upgrade stops serving v1alpha1; then git drops the Widget.
      await extensions.patchCustomResourceDefinition({
        name: `widgets.${group}`,
        body: [{ op: 'replace', path: '/spec/versions/0/served', value: false }],
      });
      await vi.waitFor(async () => {
        kube.discovery.invalidate();
        expect(await kube.discovery.resolve(`${group}/v1alpha1`, 'Widget')).toBeUndefined();
      }, poll);

      const outcome = await deployToCluster(kube, request([]));

      expect(outcome.resources.map((r) => `${r.kind}/${r.name}:${r.action}`)).toEqual(['Widget/w:pruned']);
      const left = await kube.get(widgetsV1, ns.name, 'w');
      expect(left === undefined || left.metadata.deletionTimestamp !== undefined).toBe(true);
    } finally {
      await extensions.deleteCustomResourceDefinition({ name: `widgets.${group}` });
    }
  });
});

import { randomBytes } from 'node:crypto';
import { ApiextensionsV1Api } from '@kubernetes/client-node';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { environmentSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/lib/logger.js';
import { closeClusterClients, createClusterClient } from '../../src/kube/cluster.js';
import { deployToCluster } from '../../src/kube/deploy.js';
import type { DeployRequest } from '../../src/kube/types.js';
import { createTestNamespace, kubeConfigFromTest, kubeconfigPathFromTest } from '../helpers/kube.js';

afterAll(() => closeClusterClients());

describe('a custom resource whose CRD appeared after this worker last looked', () => {
  it('deploys once the CRD is established, without waiting out the discovery cache', async () => {
    const ns = await createTestNamespace('discovery-new-crd');
    const group = `t${randomBytes(4).toString('hex')}.pushgate.dev`;
    const environment = environmentSchema.parse({
      name: `discovery-${randomBytes(3).toString('hex')}`,
      repo: { provider: 'github', name: 'acme/env', url: 'file:///nowhere' },
      branch: 'env/test',
      cluster: 'test',
      namespace: ns.name,
      allow: { namespaces: [ns.name], clusterScoped: false },
      healthTimeout: 0,
    });
    const kube = createClusterClient({ name: 'test', kubeconfig: kubeconfigPathFromTest() });
    const request = (): DeployRequest => ({
      environment,
      manifests: [
        {
          object: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1 } },
          source: { file: 'app.yaml', document: 1 },
        },
      ],
      sha: randomBytes(20).toString('hex'),
      jobId: 'job-1',
      logger: silentLogger(),
      assertLockHeld: () => Promise.resolve(),
    });

    // The kind is unknown, and this client's discovery remembers that.
    await expect(deployToCluster(kube, request())).rejects.toThrow(/unknown kind Widget/);

    // Another worker's deploy (here: the API directly) creates the CRD.
    const extensions = kubeConfigFromTest().makeApiClient(ApiextensionsV1Api);
    await extensions.createCustomResourceDefinition({
      body: {
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
      },
    });
    try {
      // Well inside the 30 s the cache keeps an answer: a remembered miss is asked again.
      const result = await vi.waitFor(() => deployToCluster(kube, request()), {
        timeout: 20_000,
        interval: 250,
      });
      expect(result.resources.map((r) => `${r.kind}/${r.name}:${r.action}`)).toEqual(['Widget/w:created']);
    } finally {
      await extensions.deleteCustomResourceDefinition({ name: `widgets.${group}` });
    }
  });
});

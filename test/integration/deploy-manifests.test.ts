import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { createTestNamespace, kubeConfigFromTest, type TestNamespace } from '../helpers/kube.js';

const manifestsDir = fileURLToPath(new URL('../../deploy/kubernetes/', import.meta.url));
const CLUSTER_SCOPED = new Set(['ClusterRole', 'ClusterRoleBinding', 'Namespace']);

interface ManifestFile {
  file: string;
  objects: KubernetesObject[];
}

function readManifests(): ManifestFile[] {
  return readdirSync(manifestsDir)
    .filter((file) => /\.ya?ml$/.test(file) && file !== 'kustomization.yaml')
    .sort()
    .map((file) => ({
      file,
      objects: parseAllDocuments(readFileSync(join(manifestsDir, file), 'utf8'))
        .map((document) => document.toJS() as KubernetesObject | null)
        .filter((object): object is KubernetesObject => object !== null),
    }));
}

describe('deploy/kubernetes manifests', () => {
  const files = readManifests();
  let namespace: TestNamespace;

  beforeAll(async () => {
    namespace = await createTestNamespace('deploy-manifests');
  });

  afterAll(async () => {
    await namespace?.cleanup();
  });

  it('kustomization.yaml lists every manifest except the secret example', () => {
    const kustomization = parseAllDocuments(
      readFileSync(join(manifestsDir, 'kustomization.yaml'), 'utf8'),
    )[0]!.toJS() as {
      resources: string[];
    };
    const expected = files.map((f) => f.file).filter((file) => !file.includes('.example.'));
    expect([...kustomization.resources].sort()).toEqual(expected);
  });

  it('the ConfigMap holds a valid pushgate configuration', () => {
    const configMap = files.flatMap((f) => f.objects).find((object) => object.kind === 'ConfigMap') as
      (KubernetesObject & { data: Record<string, string> }) | undefined;
    const text = configMap?.data['pushgate.yaml'];
    expect(text).toBeDefined();
    const config = parseConfigText(text!, 'configmap.yaml', { REDIS_URL: 'redis://redis:6379' });
    expect(config.environments.map((e) => e.name)).toEqual(['production']);
  });

  it('every object is accepted by a server-side apply dry-run in a fresh namespace', async () => {
    const client = KubernetesObjectApi.makeApiClient(kubeConfigFromTest());
    const suffix = namespace.name;
    const results: string[] = [];
    for (const { file, objects } of files) {
      for (const original of objects) {
        const object = structuredClone(original) as KubernetesObject & {
          subjects?: { kind: string; namespace?: string }[];
          roleRef?: { name: string };
        };
        object.metadata ??= {};
        if (CLUSTER_SCOPED.has(object.kind ?? '')) {
          // Dry-runs persist nothing, but a unique name keeps this test independent of any
          // real pushgate installed on the same cluster.
          object.metadata.name = `${object.metadata.name}-${suffix}`;
          if (object.roleRef) object.roleRef.name = `${object.roleRef.name}-${suffix}`;
          for (const subject of object.subjects ?? []) {
            if (subject.kind === 'ServiceAccount') subject.namespace = namespace.name;
          }
        } else {
          object.metadata.namespace = namespace.name;
        }
        const where = `${file}: ${object.kind}/${object.metadata.name}`;
        try {
          await client.patch(object, undefined, 'All', 'pushgate-test', true, PatchStrategy.ServerSideApply);
        } catch (error) {
          throw new Error(`${where} was rejected: ${(error as Error).message}`, { cause: error });
        }
        results.push(where);
      }
    }
    expect(results.length).toBeGreaterThanOrEqual(8);
    expect(results.some((r) => r.includes('Deployment/pushgate-worker'))).toBe(true);
    expect(results.some((r) => r.includes('Deployment/pushgate-receiver'))).toBe(true);
  });
});

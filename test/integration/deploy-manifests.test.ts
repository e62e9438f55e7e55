import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request, type RequestOptions } from 'node:https';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { gitFetchLimitsFromEnv } from '../../src/git/fetch-budget.js';
import { workerTuningFromEnv } from '../../workers/deploy.js';
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

/** Where each kind the manifests use lives in the API (plural, scope). */
const RESOURCES: Record<string, { path: string; namespaced: boolean }> = {
  'v1/ServiceAccount': { path: '/api/v1/serviceaccounts', namespaced: true },
  'v1/ConfigMap': { path: '/api/v1/configmaps', namespaced: true },
  'v1/Secret': { path: '/api/v1/secrets', namespaced: true },
  'v1/Service': { path: '/api/v1/services', namespaced: true },
  'apps/v1/Deployment': { path: '/apis/apps/v1/deployments', namespaced: true },
  'rbac.authorization.k8s.io/v1/ClusterRole': {
    path: '/apis/rbac.authorization.k8s.io/v1/clusterroles',
    namespaced: false,
  },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': {
    path: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
    namespaced: false,
  },
};

/**
 * A server-side apply dry-run sent as raw JSON with fieldValidation=Strict. The typed
 * client would serialize through its models and silently drop an unknown or misspelled
 * field, and the API server only warns about them without Strict: either way a typo passes.
 */
async function dryRunApply(kc: KubeConfig, object: KubernetesObject, namespace: string): Promise<void> {
  const resource = RESOURCES[`${object.apiVersion}/${object.kind}`];
  if (!resource) throw new Error(`add ${object.apiVersion} ${object.kind} to RESOURCES in this test`);
  const server = new URL(kc.getCurrentCluster()!.server);
  const [prefix, plural] = [
    resource.path.slice(0, resource.path.lastIndexOf('/')),
    resource.path.split('/').at(-1),
  ];
  const path =
    `${prefix}${resource.namespaced ? `/namespaces/${namespace}` : ''}/${plural}/${object.metadata!.name}` +
    '?dryRun=All&fieldManager=pushgate-test&force=true&fieldValidation=Strict';
  const options: RequestOptions = {
    method: 'PATCH',
    hostname: server.hostname,
    port: server.port,
    path,
    headers: { 'content-type': 'application/apply-patch+yaml', accept: 'application/json' },
  };
  await kc.applyToHTTPSOptions(options);
  const body = JSON.stringify(object);
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(options, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
  if (status < 200 || status >= 300) {
    let message = text;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? text;
    } catch {
      // not JSON: keep the raw answer
    }
    throw new Error(`HTTP ${status}: ${message}`);
  }
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

  it('lets a worker finish its longest deploy before it hands it back, and hand it back before SIGKILL', () => {
    const objects = files.flatMap((f) => f.objects);
    const configMap = objects.find((object) => object.kind === 'ConfigMap') as
      (KubernetesObject & { data: Record<string, string> }) | undefined;
    const config = parseConfigText(configMap!.data['pushgate.yaml']!, 'configmap.yaml', {
      REDIS_URL: 'redis://redis:6379',
    });
    const worker = objects.find(
      (object) => object.kind === 'Deployment' && object.metadata?.name?.includes('worker'),
    ) as
      | (KubernetesObject & {
          spec: {
            template: {
              spec: {
                terminationGracePeriodSeconds: number;
                containers: { env?: { name: string; value?: string }[] }[];
              };
            };
          };
        })
      | undefined;
    const pod = worker!.spec.template.spec;
    const env = Object.fromEntries(
      pod.containers.flatMap((container) => container.env ?? []).map((e) => [e.name, e.value]),
    );
    const { shutdownDeadlineMs } = workerTuningFromEnv(env);
    const longestDeployMs = Math.max(...config.environments.map((e) => e.healthTimeout));

    expect(shutdownDeadlineMs).toBeGreaterThanOrEqual(longestDeployMs);
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(shutdownDeadlineMs!);
  });

  it('leaves room on the git cache volume for a fetch at its limit beside the mirror it grows', () => {
    const worker = files
      .flatMap((f) => f.objects)
      .find((object) => object.kind === 'Deployment' && object.metadata?.name?.includes('worker')) as
      | (KubernetesObject & {
          spec: {
            template: {
              spec: {
                containers: {
                  env?: { name: string; value?: string }[];
                  volumeMounts?: { name: string; mountPath: string }[];
                }[];
                volumes: { name: string; emptyDir?: { sizeLimit?: string } }[];
              };
            };
          };
        })
      | undefined;
    const pod = worker!.spec.template.spec;
    const env = Object.fromEntries(
      pod.containers.flatMap((container) => container.env ?? []).map((e) => [e.name, e.value]),
    );
    const cacheDir = env.PUSHGATE_CACHE_DIR!;
    const mounts = pod.containers.flatMap((container) => container.volumeMounts ?? []);
    const cacheVolume = mounts.find((mount) => cacheDir.startsWith(mount.mountPath))!.name;
    const sizeLimit = pod.volumes.find((volume) => volume.name === cacheVolume)?.emptyDir?.sizeLimit;
    const units: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };
    const [, amount, unit] = /^(\d+)(Ki|Mi|Gi)$/.exec(sizeLimit ?? '')!;

    expect(Number(amount) * units[unit!]!).toBeGreaterThanOrEqual(
      2 * gitFetchLimitsFromEnv(env).fetchMaxBytes,
    );
  });

  it('every object is accepted by a server-side apply dry-run in a fresh namespace', async () => {
    const kc = kubeConfigFromTest();
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
          await dryRunApply(kc, object, namespace.name);
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

import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request, type RequestOptions } from 'node:https';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { gitFetchLimitsFromEnv } from '../../src/git/fetch-budget.js';
import { CLOSE_PAST_DEADLINE_MAX_MS, workerTuningFromEnv } from '../../workers/deploy.js';
import { shippedWorkerNodeFlags } from '../../bench/shipped-worker.js';
import { createTestNamespace, kubeConfigFromTest, type TestNamespace } from '../helpers/kube.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const manifestsDir = join(ROOT, 'deploy/kubernetes/');
const CLUSTER_SCOPED = new Set(['ClusterRole', 'ClusterRoleBinding', 'Namespace']);
/** Manifests kustomization.yaml leaves out on purpose: applied by hand, or added by choice. */
const OPT_IN = new Set(['secret.example.yaml', 'rbac-cluster-wide.yaml', 'ingress.example.yaml']);
/** The configuration configMapGenerator turns into the ConfigMap, and the variables it needs. */
const CONFIG_FILE = join(manifestsDir, 'config', 'pushgate.yaml');
const CONFIG_ENV = { REDIS_URL: 'redis://redis:6379' };

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
  'networking.k8s.io/v1/Ingress': { path: '/apis/networking.k8s.io/v1/ingresses', namespaced: true },
  'policy/v1/PodDisruptionBudget': { path: '/apis/policy/v1/poddisruptionbudgets', namespaced: true },
  'rbac.authorization.k8s.io/v1/RoleBinding': {
    path: '/apis/rbac.authorization.k8s.io/v1/rolebindings',
    namespaced: true,
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

  it('kustomization.yaml lists every manifest except the opt-in ones, and generates the ConfigMap from config/', () => {
    const kustomization = parseAllDocuments(
      readFileSync(join(manifestsDir, 'kustomization.yaml'), 'utf8'),
    )[0]!.toJS() as {
      resources: string[];
      configMapGenerator: { name: string; files: string[] }[];
    };
    const expected = files.map((f) => f.file).filter((file) => !OPT_IN.has(file));
    expect([...kustomization.resources].sort()).toEqual(expected);
    expect(kustomization.configMapGenerator).toEqual([
      expect.objectContaining({ name: 'pushgate-config', files: ['pushgate.yaml=config/pushgate.yaml'] }),
    ]);
  });

  it('config/pushgate.yaml holds a valid pushgate configuration', () => {
    const config = parseConfigText(readFileSync(CONFIG_FILE, 'utf8'), CONFIG_FILE, CONFIG_ENV);
    expect(config.environments.map((e) => e.name)).toEqual(['production']);
  });

  it('lets a worker finish its longest deploy before it hands it back, and hand it back before SIGKILL', () => {
    const objects = files.flatMap((f) => f.objects);
    const config = parseConfigText(readFileSync(CONFIG_FILE, 'utf8'), CONFIG_FILE, CONFIG_ENV);
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
    // The CLI's second of exit after a stop, on top of close()'s steps past the deadline.
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(
      shutdownDeadlineMs! + CLOSE_PAST_DEADLINE_MAX_MS + 1_000,
    );
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
        // Dry-runs persist nothing, but unique names keep this test independent of any real
        // pushgate installed on the same cluster (as kustomization.yaml's replacements do).
        if (object.roleRef) object.roleRef.name = `${object.roleRef.name}-${suffix}`;
        for (const subject of object.subjects ?? []) {
          if (subject.kind === 'ServiceAccount') subject.namespace = namespace.name;
        }
        if (CLUSTER_SCOPED.has(object.kind ?? '')) {
          object.metadata.name = `${object.metadata.name}-${suffix}`;
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

interface ContainerLike {
  env?: {
    name: string;
    value?: string;
    valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
  }[];
  envFrom?: unknown[];
  command?: string[];
  args?: string[];
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface PodSpecLike {
  terminationGracePeriodSeconds?: number;
  containers: ContainerLike[];
  volumes?: { name: string; emptyDir?: { sizeLimit?: string } }[];
}

function podSpec(name: string): PodSpecLike {
  const deployment = readManifests()
    .flatMap((f) => f.objects)
    .find((object) => object.kind === 'Deployment' && object.metadata?.name === name) as
    (KubernetesObject & { spec: { template: { spec: PodSpecLike } } }) | undefined;
  if (!deployment) throw new Error(`no Deployment ${name} in deploy/kubernetes`);
  return deployment.spec.template.spec;
}

function bytes(quantity: string): number {
  const units: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };
  const [, amount, unit] = /^(\d+)(Ki|Mi|Gi)$/.exec(quantity) ?? [];
  if (!amount || !unit) throw new Error(`unexpected quantity ${quantity}`);
  return Number(amount) * units[unit]!;
}

const RECEIVER_SECRETS = ['GITHUB_WEBHOOK_SECRET', 'GITLAB_WEBHOOK_TOKEN', 'GITLAB_WEBHOOK_SIGNING_TOKEN'];
const WORKER_SECRETS = ['GIT_TOKEN', 'GITHUB_TOKEN', 'GITLAB_TOKEN'];
/** The receiver's in-flight grace after SIGTERM (src/http/server.ts). */
const RECEIVER_DRAIN_SECONDS = 10;

describe('deploy/kubernetes pods', () => {
  it('gives each Deployment only its own secrets, by name, never the whole Secret', () => {
    for (const [name, own, others] of [
      ['pushgate-receiver', RECEIVER_SECRETS, WORKER_SECRETS],
      ['pushgate-worker', WORKER_SECRETS, RECEIVER_SECRETS],
    ] as const) {
      const containers = podSpec(name).containers;
      expect(containers.flatMap((c) => c.envFrom ?? [])).toEqual([]);
      const keys = containers
        .flatMap((c) => c.env ?? [])
        .flatMap((e) => e.valueFrom?.secretKeyRef?.key ?? []);
      expect(keys).toEqual(expect.arrayContaining(['REDIS_URL', 'PUSHGATE_API_TOKEN', ...own]));
      for (const key of others) expect(keys).not.toContain(key);
      // Without the API token the status API (suspend, sync) and /metrics are open to the Service's callers.
      const required = containers
        .flatMap((c) => c.env ?? [])
        .filter((e) => e.valueFrom?.secretKeyRef && e.valueFrom.secretKeyRef.optional !== true)
        .map((e) => e.valueFrom!.secretKeyRef!.key);
      expect(required.sort(), name).toEqual(['PUSHGATE_API_TOKEN', 'REDIS_URL']);
    }
  });

  it("runs a worker with the image's entrypoint, as docker-compose.yml does, and NODE_OPTIONS that this Node.js takes", () => {
    const worker = podSpec('pushgate-worker').containers[0]!;
    // The image's entrypoint keeps tini as PID 1 and runs the package bin, which turns V8's
    // Maglev off for a worker by itself: no command of its own to keep in step with the image.
    expect({ command: worker.command, args: worker.args }).toEqual({ command: undefined, args: ['worker'] });
    const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as {
      services: { worker: { entrypoint?: string[]; command?: string[] } };
    };
    expect(compose.services.worker).toMatchObject({ command: ['worker'] });
    expect(compose.services.worker.entrypoint).toBeUndefined();
    // node refuses a V8 flag it does not know (a later Node.js may drop one): the pod would not start.
    const flags = shippedWorkerNodeFlags();
    expect(flags).toContain('--max-old-space-size=768');
    const run = spawnSync(process.execPath, ['-e', 'process.stdout.write("started")'], {
      env: { PATH: process.env.PATH, NODE_OPTIONS: flags.join(' ') },
      encoding: 'utf8',
    });
    expect({ status: run.status, stdout: run.stdout, stderr: run.stderr }).toEqual({
      status: 0,
      stdout: 'started',
      stderr: '',
    });
  });

  it('keeps a terminating receiver serving through preStop, and lets it drain before SIGKILL', () => {
    const pod = podSpec('pushgate-receiver');
    const command = pod.containers[0]!.lifecycle?.preStop?.exec?.command ?? [];
    expect(command[0]).toBe('sleep');
    const preStopSeconds = Number(command[1]);
    expect(preStopSeconds).toBeGreaterThanOrEqual(5);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(preStopSeconds + RECEIVER_DRAIN_SECONDS);
  });

  it('requests the ephemeral storage its emptyDir volumes may fill, and limits it a little above', () => {
    for (const name of ['pushgate-receiver', 'pushgate-worker']) {
      const pod = podSpec(name);
      const volumes = (pod.volumes ?? []).flatMap((v) =>
        v.emptyDir?.sizeLimit ? [bytes(v.emptyDir.sizeLimit)] : [],
      );
      const total = volumes.reduce((sum, size) => sum + size, 0);
      const resources = pod.containers[0]!.resources!;
      expect(bytes(resources.requests!['ephemeral-storage']!)).toBeGreaterThanOrEqual(total);
      expect(bytes(resources.limits!['ephemeral-storage']!)).toBeGreaterThan(total);
    }
  });
});

/** `kubectl kustomize` (kustomize built into kubectl) of a copy of deploy/kubernetes, the installation namespace changed. */
function kustomizeBuild(installNamespace: string): KubernetesObject[] {
  const copy = mkdtempSync(join(tmpdir(), 'pushgate-kustomize-'));
  try {
    cpSync(manifestsDir, copy, { recursive: true });
    const kustomization = join(copy, 'kustomization.yaml');
    const text = readFileSync(kustomization, 'utf8');
    const changed = text.replace(/^( {6}namespace: )pushgate$/m, `$1${installNamespace}`);
    if (!/^ {6}namespace: pushgate$/m.test(text))
      throw new Error('no NamespaceTransformer namespace in kustomization.yaml');
    writeFileSync(kustomization, changed);
    const run = spawnSync('kubectl', ['kustomize', copy], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`kubectl kustomize failed: ${run.stderr}`);
    return parseAllDocuments(run.stdout)
      .map((document) => document.toJS() as KubernetesObject | null)
      .filter((object): object is KubernetesObject => object !== null);
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

const hasKubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;

describe.skipIf(!hasKubectl)('deploy/kubernetes, built by kustomize', () => {
  type Binding = KubernetesObject & {
    roleRef: { name: string };
    subjects: { name: string; namespace: string }[];
  };

  it('binds the worker in the environment namespace only, under names that carry the installation namespace', () => {
    const objects = kustomizeBuild('pushgate');
    const role = objects.find((o) => o.kind === 'ClusterRole')!;
    const binding = objects.find((o) => o.kind === 'RoleBinding') as Binding;
    expect(objects.some((o) => o.kind === 'ClusterRoleBinding')).toBe(false);
    expect(role.metadata?.name).toBe('pushgate-applier-pushgate');
    expect(binding.metadata).toMatchObject({ name: 'pushgate-applier-pushgate', namespace: 'apps' });
    expect(binding.roleRef.name).toBe('pushgate-applier-pushgate');
    expect(binding.subjects).toEqual([
      expect.objectContaining({ name: 'pushgate-worker', namespace: 'pushgate' }),
    ]);
    type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
    const rules = (role as KubernetesObject & { rules: Rule[] }).rules;
    const verbs = new Set(rules.flatMap((rule) => rule.verbs));
    // With bind or escalate, a commit could grant anything in the namespace, the Namespace itself included.
    for (const verb of ['bind', 'escalate', 'impersonate', '*']) expect(verbs.has(verb)).toBe(false);
    // Bound by a RoleBinding, `*` of the core group would cover the Namespace itself and serviceaccounts/token.
    for (const rule of rules.filter((r) => r.apiGroups.includes('') || r.apiGroups.includes('*')))
      expect(rule.resources).not.toContain('*');
    expect(rules.filter((rule) => rule.resources.includes('namespaces'))).toEqual([
      { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
    ]);
    for (const object of objects) {
      if (!CLUSTER_SCOPED.has(object.kind ?? '') && object.kind !== 'RoleBinding') {
        expect(`${object.kind}/${object.metadata?.name} in ${object.metadata?.namespace}`).toMatch(
          / in pushgate$/,
        );
      }
    }
  });

  it('a second installation in another namespace shares no RBAC object with the first', () => {
    const names = (objects: KubernetesObject[]): string[] =>
      objects
        .filter((o) => /Role/.test(o.kind ?? ''))
        .map((o) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`);
    const first = names(kustomizeBuild('pushgate'));
    const second = names(kustomizeBuild('pushgate-b'));
    expect(second).toHaveLength(first.length);
    expect(second.filter((name) => first.includes(name))).toEqual([]);
  });

  it('mounts the generated ConfigMap, whose name changes with the configuration', () => {
    const objects = kustomizeBuild('pushgate');
    const configMap = objects.find((o) => o.kind === 'ConfigMap') as KubernetesObject & {
      data: Record<string, string>;
    };
    expect(configMap.metadata?.name).toMatch(/^pushgate-config-[a-z0-9]+$/);
    expect(configMap.data['pushgate.yaml']).toBe(readFileSync(CONFIG_FILE, 'utf8'));
    for (const deployment of objects.filter((o) => o.kind === 'Deployment')) {
      const spec = (
        deployment as KubernetesObject & {
          spec: { template: { spec: { volumes: { configMap?: { name: string } }[] } } };
        }
      ).spec.template.spec;
      expect(spec.volumes.flatMap((v) => v.configMap?.name ?? [])).toEqual([configMap.metadata?.name]);
    }
  });
});

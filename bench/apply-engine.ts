/**
 * `npm run bench -- apply-engine`: a sanity check of the apply engine against
 * `kubectl apply --server-side` on the local control plane (SPEC §6). Prints medians; the
 * worker's `deploy` bench is the one that records numbers in BENCHMARKS.md.
 *
 *   1,000 ConfigMaps: first apply and no-change re-apply, pushgate vs kubectl
 *   20 mixed objects: first apply and one-object change
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { environmentSchema, type EnvironmentConfig } from '../src/config/schema.js';
import { silentLogger } from '../src/lib/logger.js';
import { closeClusterClients, createClusterClient, type ClusterClient } from '../src/kube/cluster.js';
import { deployToCluster } from '../src/kube/deploy.js';
import type { LoadedManifest } from '../src/manifests/types.js';
import { startControlPlane } from '../test/helpers/control-plane.js';

const run$ = promisify(execFile);

function configMaps(count: number, version: string): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, i) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: `cm-${i}`, labels: { app: 'bench' } },
    data: { index: String(i), version, payload: 'x'.repeat(200) },
  }));
}

function mixed(version: string): Record<string, unknown>[] {
  const objects: Record<string, unknown>[] = [];
  for (let i = 0; i < 5; i++) {
    objects.push({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `conf-${i}` },
      data: { v: i === 0 ? version : '1' },
    });
    objects.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: `sa-${i}` } });
    objects.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `svc-${i}` },
      spec: { selector: { app: `app-${i}` }, ports: [{ port: 80 }] },
    });
    objects.push({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: `app-${i}` },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: `app-${i}` } },
        template: {
          metadata: { labels: { app: `app-${i}` } },
          spec: { containers: [{ name: 'c', image: 'nginx:1' }] },
        },
      },
    });
  }
  return objects;
}

function loaded(objects: Record<string, unknown>[]): LoadedManifest[] {
  return objects.map((object, index) => ({
    object: object as LoadedManifest['object'],
    source: { file: 'bench.yaml', document: index + 1 },
  }));
}

function environment(namespace: string): EnvironmentConfig {
  return environmentSchema.parse({
    name: namespace,
    repo: { provider: 'github', name: 'bench/bench', url: 'file:///dev/null' },
    branch: 'main',
    cluster: 'bench',
    namespace,
    allow: { namespaces: [namespace] },
    healthTimeout: 0,
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

async function createNamespace(kube: ClusterClient, name: string): Promise<void> {
  await kube.transport.request({ method: 'POST', path: '/api/v1/namespaces', body: { metadata: { name } } });
}

async function pushgate(
  kube: ClusterClient,
  namespace: string,
  objects: Record<string, unknown>[],
): Promise<number> {
  return timed(() =>
    deployToCluster(kube, {
      environment: environment(namespace),
      manifests: loaded(objects),
      sha: 'bench',
      jobId: 'bench',
      logger: silentLogger(),
      assertLockHeld: () => Promise.resolve(),
    }),
  );
}

async function kubectl(kubeconfig: string, namespace: string, file: string): Promise<number> {
  return timed(() =>
    run$('kubectl', ['--kubeconfig', kubeconfig, 'apply', '--server-side', '-n', namespace, '-f', file], {
      maxBuffer: 64 * 1024 * 1024,
    }),
  );
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pushgate-bench-apply-'));
  const controlPlane = await startControlPlane({
    dir: path.join(dir, 'cluster'),
    onProgress: () => undefined,
  });
  const kube = createClusterClient({ name: 'bench', kubeconfig: controlPlane.kubeconfigPath });
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const report: Record<string, number[]> = {};
  const record = (key: string, ms: number): void => {
    (report[key] ??= []).push(ms);
  };
  try {
    await mkdir(path.join(dir, 'files'));
    const file = path.join(dir, 'files', 'configmaps.json');
    await writeFile(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: configMaps(1000, '1') }));
    for (let round = 0; round < rounds; round++) {
      const kubectlNs = `bench-kubectl-${round}`;
      const pushgateNs = `bench-pushgate-${round}`;
      const smallNs = `bench-small-${round}`;
      for (const ns of [kubectlNs, pushgateNs, smallNs]) await createNamespace(kube, ns);

      record('kubectl 1000 first', await kubectl(controlPlane.kubeconfigPath, kubectlNs, file));
      record('kubectl 1000 no-change', await kubectl(controlPlane.kubeconfigPath, kubectlNs, file));
      record('pushgate 1000 first', await pushgate(kube, pushgateNs, configMaps(1000, '1')));
      record('pushgate 1000 no-change', await pushgate(kube, pushgateNs, configMaps(1000, '1')));
      record('pushgate 20 first', await pushgate(kube, smallNs, mixed('1')));
      record('pushgate 20 one change', await pushgate(kube, smallNs, mixed(String(round + 2))));
    }
    for (const [key, values] of Object.entries(report)) {
      process.stdout.write(
        `${key.padEnd(26)} median ${median(values).toFixed(0).padStart(6)} ms  (${values.map((v) => v.toFixed(0)).join(', ')})\n`,
      );
    }
    const ratio = (a: string, b: string): string =>
      (median(report[a] ?? []) / median(report[b] ?? [])).toFixed(2);
    process.stdout.write(
      `first apply ratio pushgate/kubectl:  ${ratio('pushgate 1000 first', 'kubectl 1000 first')} (target <= 0.5)\n`,
    );
    process.stdout.write(
      `no-change ratio pushgate/kubectl:    ${ratio('pushgate 1000 no-change', 'kubectl 1000 no-change')} (target <= 0.3)\n`,
    );
  } finally {
    closeClusterClients();
    await controlPlane.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { EnvironmentConfig } from '../../src/config/schema.js';
import { silentLogger } from '../../src/lib/logger.js';
import { closeClusterClients, createClusterClient, type ClusterClient } from '../../src/kube/cluster.js';
import { deployToCluster } from '../../src/kube/deploy.js';
import { diffAgainstCluster } from '../../src/kube/diff.js';
import { readInventory } from '../../src/kube/inventory.js';
import type { DeployError, DeployRequest } from '../../src/kube/types.js';
import { CRDS } from '../../src/kube/shared-containers.js';
import type { ResourceInfo } from '../../src/manifests/resource-info.js';
import type { LoadedManifest } from '../../src/manifests/types.js';
import { CONFIG_MAPS, createTestNamespace, kubeconfigPathFromTest, NAMESPACES } from '../helpers/kube.js';
import { widgetCrd } from '../helpers/crd.js';
import { testEnvironment } from '../helpers/test-environment.js';

function client(): ClusterClient {
  return createClusterClient({ name: 'test', kubeconfig: kubeconfigPathFromTest() });
}

afterAll(() => closeClusterClients());

function environmentFor(namespace: string): EnvironmentConfig {
  return testEnvironment(namespace, {
    allow: { namespaces: [namespace, `${namespace}-*`], clusterScoped: true },
  });
}

function request(environment: EnvironmentConfig, ...objects: Record<string, unknown>[]): DeployRequest {
  const manifests: LoadedManifest[] = objects.map((object, index) => ({
    object: object as LoadedManifest['object'],
    source: { file: 'env/app.yaml', document: index + 1 },
  }));
  return {
    environment,
    manifests,
    sha: randomBytes(20).toString('hex'),
    jobId: 'job-1',
    logger: silentLogger(),
    assertLockHeld: () => Promise.resolve(),
  };
}

function actions(resources: { kind: string; name: string; action: string }[]): string[] {
  return resources.map((r) => `${r.kind}/${r.name}:${r.action}`);
}

describe('prune keeps what the set still needs', () => {
  it('does not delete a Namespace git dropped while objects of the set still live in it', async () => {
    const home = await createTestNamespace('prune-ns-in-use');
    const fresh = `${home.name}-new`;
    const env = environmentFor(home.name);
    const kube = client();
    const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: fresh } };
    const inside = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'inside', namespace: fresh },
      data: {},
    };
    await deployToCluster(kube, request(env, namespace, inside));

    // The Namespace object moves out of git (to another tool, say); the ConfigMap stays.
    const outcome = await deployToCluster(kube, request(env, inside));

    expect(actions(outcome.resources)).toEqual(['ConfigMap/inside:unchanged', `Namespace/${fresh}:skipped`]);
    expect((await kube.get(NAMESPACES, undefined, fresh))?.metadata).not.toHaveProperty('deletionTimestamp');
    // Still listed, in apply order.
    expect((await readInventory(kube, env))?.objects.map((ref) => ref.kind)).toEqual([
      'Namespace',
      'ConfigMap',
    ]);

    // Once git drops what was in it as well, the Namespace is pruned after all.
    const emptied = await deployToCluster(kube, request({ ...env, allowEmpty: true }));
    expect(actions(emptied.resources)).toEqual(['ConfigMap/inside:pruned', `Namespace/${fresh}:pruned`]);
  });

  it('does not delete a CRD git dropped while custom resources of the set are of its kind', async () => {
    const ns = await createTestNamespace('prune-crd-in-use');
    const group = `${ns.name}.example.com`;
    const env = environmentFor(ns.name);
    const kube = client();
    const widget = { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w' }, spec: { size: 3 } };
    const widgets: ResourceInfo = {
      group,
      version: 'v1',
      kind: 'Widget',
      plural: 'widgets',
      namespaced: true,
    };
    await deployToCluster(kube, request(env, widgetCrd(group), widget));

    const outcome = await deployToCluster(kube, request(env, widget));

    expect(actions(outcome.resources)).toEqual([
      'Widget/w:unchanged',
      `CustomResourceDefinition/widgets.${group}:skipped`,
    ]);
    expect((await kube.get(CRDS, undefined, `widgets.${group}`))?.metadata).not.toHaveProperty(
      'deletionTimestamp',
    );
    expect((await kube.get(widgets, ns.name, 'w'))?.spec).toEqual({ size: 3 });
  });

  it('does not delete a Namespace or CRD git dropped with objects in or of it that prune keeps', async () => {
    const home = await createTestNamespace('prune-kept-inside');
    const data = `${home.name}-data`;
    const group = `${home.name}.example.com`;
    const env = environmentFor(home.name);
    const kube = client();
    const keep = { 'pushgate.dev/prune': 'disabled' };
    const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: data } };
    const claim = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'claim', namespace: data, annotations: keep },
      data: {},
    };
    const widget = { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w', annotations: keep } };
    const app = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app' }, data: {} };
    await deployToCluster(kube, request(env, namespace, claim, widgetCrd(group), widget, app));

    // git drops the folder: the Namespace and CRD with what is annotated to stay.
    const preview = await diffAgainstCluster(kube, {
      environment: env,
      manifests: request(env, app).manifests,
    });
    expect(preview.changes).toEqual([]);
    expect(preview.keptFromPrune.map(({ ref }) => ref.kind).sort()).toEqual([
      'ConfigMap',
      'CustomResourceDefinition',
      'Namespace',
      'Widget',
    ]);
    const outcome = await deployToCluster(kube, request(env, app));

    expect(actions(outcome.resources)).toEqual([
      'ConfigMap/app:unchanged',
      'Widget/w:skipped',
      'ConfigMap/claim:skipped',
      `CustomResourceDefinition/widgets.${group}:skipped`,
      `Namespace/${data}:skipped`,
    ]);
    const message = (kind: string) => outcome.resources.find((r) => r.kind === kind)?.message;
    expect(message('Namespace')).toBe(
      `not pruned: v1 ConfigMap ${data}/claim, which prune left in place, is in it (deleting it would delete that too)`,
    );
    expect(message('CustomResourceDefinition')).toBe(
      `not pruned: ${group}/v1 Widget ${home.name}/w, which prune left in place, is of its kind (deleting it would delete that too)`,
    );
    expect((await kube.get(NAMESPACES, undefined, data))?.metadata).not.toHaveProperty('deletionTimestamp');
    expect((await kube.get(CRDS, undefined, `widgets.${group}`))?.metadata).not.toHaveProperty(
      'deletionTimestamp',
    );
    // Listed until what they hold is gone, and what holds them with them.
    const listed = async () =>
      (await readInventory(kube, env))?.objects.map((ref) => `${ref.kind}/${ref.name}`).sort();
    expect(await listed()).toEqual([
      'ConfigMap/app',
      'ConfigMap/claim',
      `CustomResourceDefinition/widgets.${group}`,
      `Namespace/${data}`,
      'Widget/w',
    ]);

    // The next deploy finds them held still: kept again, not pruned with what they hold.
    const next = await deployToCluster(kube, request(env, app));
    expect(actions(next.resources).sort()).toEqual(actions(outcome.resources).sort());
    expect((await kube.get(NAMESPACES, undefined, data))?.metadata).not.toHaveProperty('deletionTimestamp');
    expect(await kube.get(CRDS, undefined, `widgets.${group}`)).toBeDefined();

    // Once what holds them is gone (deleted by hand), they go too.
    await kube.transport.request({ method: 'DELETE', path: `/api/v1/namespaces/${data}/configmaps/claim` });
    await kube.transport.request({
      method: 'DELETE',
      path: `/apis/${group}/v1/namespaces/${home.name}/widgets/w`,
    });
    const last = await deployToCluster(kube, request(env, app));
    expect(actions(last.resources).sort()).toEqual([
      'ConfigMap/app:unchanged',
      'ConfigMap/claim:pruned',
      `CustomResourceDefinition/widgets.${group}:pruned`,
      `Namespace/${data}:pruned`,
      'Widget/w:pruned',
    ]);
    expect(await listed()).toEqual(['ConfigMap/app']);
  });

  it('releases a Namespace annotated to stay all the same when what is in it is kept too', async () => {
    const home = await createTestNamespace('prune-kept-released');
    const data = `${home.name}-data`;
    const env = environmentFor(home.name);
    const kube = client();
    const keep = { 'pushgate.dev/prune': 'disabled' };
    const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: data, annotations: keep } };
    const claim = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'claim', namespace: data, annotations: keep },
      data: {},
    };
    const app = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app' }, data: {} };
    await deployToCluster(kube, request(env, namespace, claim, app));

    const outcome = await deployToCluster(kube, request(env, app));

    expect(outcome.resources.find((r) => r.kind === 'Namespace')?.message).toBe(
      'not pruned: annotated pushgate.dev/prune: disabled; released (label pushgate.dev/environment removed)',
    );
    expect((await readInventory(kube, env))?.objects.map((ref) => ref.name)).toEqual(['app']);
    expect((await kube.get(NAMESPACES, undefined, data))?.metadata.labels).not.toHaveProperty([
      'pushgate.dev/environment',
    ]);
  });

  it('does not delete a Namespace that holds the inventory of another environment', async () => {
    const home = await createTestNamespace('prune-inventory-home');
    const shared = `${home.name}-shared`;
    const elsewhere = await createTestNamespace('prune-inventory-objects');
    const owner = environmentFor(home.name);
    const tenant = testEnvironment(shared, {
      allow: { namespaces: [shared, elsewhere.name], clusterScoped: false },
    });
    const kube = client();
    await deployToCluster(
      kube,
      request(owner, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: shared } }),
    );
    // The tenant's inventory lives in the shared namespace; its objects elsewhere.
    await deployToCluster(
      kube,
      request(tenant, {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'thing', namespace: elsewhere.name },
        data: {},
      }),
    );

    const outcome = await deployToCluster(kube, request({ ...owner, allowEmpty: true }));

    expect(actions(outcome.resources)).toEqual([`Namespace/${shared}:skipped`]);
    expect(outcome.resources[0]?.message).toBe(
      `not pruned: it holds the inventory of environment ${tenant.name} (deleting it would leave what that lists unprunable)`,
    );
    expect((await kube.get(NAMESPACES, undefined, shared))?.metadata).not.toHaveProperty('deletionTimestamp');
  });

  it('does not delete in a namespace the environment may no longer write to, until it may again', async () => {
    const home = await createTestNamespace('prune-policy');
    const other = await createTestNamespace('prune-policy-other');
    const wide = {
      ...environmentFor(home.name),
      allow: { namespaces: [home.name, other.name], clusterScoped: false },
    };
    const narrow = { ...wide, allow: { namespaces: [home.name], clusterScoped: false } };
    const kube = client();
    const configMap = (name: string, namespace: string) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace },
      data: {},
    });
    await deployToCluster(kube, request(wide, configMap('home', home.name), configMap('away', other.name)));

    // allow.namespaces narrowed, and git drops the object in the namespace no longer allowed.
    const outcome = await deployToCluster(kube, request(narrow, configMap('home', home.name)));

    expect(actions(outcome.resources)).toEqual(['ConfigMap/home:unchanged', 'ConfigMap/away:skipped']);
    expect(outcome.resources.find((r) => r.name === 'away')?.message).toBe(
      `not pruned: namespace "${other.name}" is not in allow.namespaces for environment ${wide.name}`,
    );
    expect(await kube.get(CONFIG_MAPS, other.name, 'away')).toBeDefined();
    expect((await readInventory(kube, narrow))?.objects.map((ref) => ref.name)).toEqual(['home', 'away']);

    const widened = await deployToCluster(kube, request(wide, configMap('home', home.name)));
    expect(actions(widened.resources)).toEqual(['ConfigMap/home:unchanged', 'ConfigMap/away:pruned']);
    expect(await kube.get(CONFIG_MAPS, other.name, 'away')).toBeUndefined();
  });
});

describe('prune honours what a person set on the live object', () => {
  it('keeps pushgate.dev/prune: disabled set with kubectl annotate through re-syncs, so a git rm keeps the object', async () => {
    const ns = await createTestNamespace('prune-annotated-by-hand');
    const env = environmentFor(ns.name);
    const kube = client();
    const configMap = (name: string) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name },
      data: {},
    });
    await deployToCluster(kube, request(env, configMap('precious'), configMap('other')));
    await kube.transport.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns.name}/configmaps/precious`,
      query: { fieldManager: 'kubectl-annotate' },
      contentType: 'application/merge-patch+json',
      body: { metadata: { annotations: { 'pushgate.dev/prune': 'disabled', note: 'by hand' } } },
    });

    // A re-sync of the same commit takes over what kubectl set, but not pushgate's own instruction.
    await deployToCluster(kube, request(env, configMap('precious'), configMap('other')));
    expect((await kube.get(CONFIG_MAPS, ns.name, 'precious'))?.metadata.annotations).toEqual({
      'pushgate.dev/prune': 'disabled',
    });

    const outcome = await deployToCluster(kube, request(env, configMap('other')));
    expect(actions(outcome.resources)).toEqual(['ConfigMap/other:unchanged', 'ConfigMap/precious:skipped']);
    expect(await kube.get(CONFIG_MAPS, ns.name, 'precious')).toBeDefined();
  });
});

describe('prune honours what a team marked for Flux or Argo CD before moving to pushgate', () => {
  it("keeps objects annotated with Flux's prune: disabled or Argo CD's Prune=false / Prune=confirm, in git or by hand", async () => {
    const ns = await createTestNamespace('prune-flux-argo-markers');
    const env = environmentFor(ns.name);
    const kube = client();
    const configMap = (name: string, annotations?: Record<string, string>) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: annotations ? { name, annotations } : { name },
      data: {},
    });
    const all = [
      configMap('flux-pvc-stand-in', { 'kustomize.toolkit.fluxcd.io/prune': 'disabled' }),
      configMap('argo-pvc-stand-in', {
        'argocd.argoproj.io/sync-options': 'ServerSideApply=true,Prune=false',
      }),
      configMap('marked-by-hand'),
      configMap('other'),
    ];
    await deployToCluster(kube, request(env, ...all));
    await kube.transport.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns.name}/configmaps/marked-by-hand`,
      query: { fieldManager: 'kubectl-annotate' },
      contentType: 'application/merge-patch+json',
      body: { metadata: { annotations: { 'argocd.argoproj.io/sync-options': 'Prune=confirm' } } },
    });
    // A re-sync takes over what kubectl set, but leaves the marker with kubectl: git does not drop it.
    await deployToCluster(kube, request(env, ...all));
    expect((await kube.get(CONFIG_MAPS, ns.name, 'marked-by-hand'))?.metadata.annotations).toEqual({
      'argocd.argoproj.io/sync-options': 'Prune=confirm',
    });

    const outcome = await deployToCluster(kube, request(env, configMap('other')));

    expect(outcome.resources.map((r) => `${r.name}:${r.action}:${r.message ?? ''}`).sort()).toEqual([
      'argo-pvc-stand-in:skipped:not pruned: annotated argocd.argoproj.io/sync-options: Prune=false; released (label pushgate.dev/environment removed)',
      'flux-pvc-stand-in:skipped:not pruned: annotated kustomize.toolkit.fluxcd.io/prune: disabled; released (label pushgate.dev/environment removed)',
      'marked-by-hand:skipped:not pruned: annotated argocd.argoproj.io/sync-options: Prune=confirm; released (label pushgate.dev/environment removed)',
      'other:unchanged:',
    ]);
    for (const name of ['flux-pvc-stand-in', 'argo-pvc-stand-in', 'marked-by-hand']) {
      const kept = await kube.get(CONFIG_MAPS, ns.name, name);
      expect(kept?.metadata.labels?.['pushgate.dev/environment']).toBeUndefined();
    }
    expect((await readInventory(kube, env))?.objects.map((ref) => ref.name)).toEqual(['other']);
  });
});

describe('prune of an object git moved to another API group', () => {
  it('keeps it, by its uid, and lists it under the group git now names', async () => {
    const ns = await createTestNamespace('prune-group-move');
    const env = environmentFor(ns.name);
    const kube = client();
    const common = {
      metadata: { name: 'marker' },
      reason: 'Marker',
      type: 'Normal',
      eventTime: '2026-01-01T00:00:00.000000Z',
      reportingInstance: 'x',
      action: 'Keep',
    };
    const regarding = { apiVersion: 'v1', kind: 'ConfigMap', name: 'x', namespace: ns.name };
    const core = {
      apiVersion: 'v1',
      kind: 'Event',
      ...common,
      involvedObject: regarding,
      message: 'kept in git',
      reportingComponent: 'git.example/x',
    };
    const events = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      ...common,
      regarding,
      note: 'kept in git',
      reportingController: 'git.example/x',
    };
    await deployToCluster(kube, request(env, core));

    // The API server serves one Event under both groups: the same object, not a stale one.
    const moved = await deployToCluster(kube, request(env, events));

    expect(actions(moved.resources)).toEqual(['Event/marker:unchanged']);
    expect((await readInventory(kube, env))?.objects.map((ref) => ref.apiVersion)).toEqual([
      'events.k8s.io/v1',
    ]);
    const again = await deployToCluster(kube, request(env, events));
    expect(actions(again.resources)).toEqual(['Event/marker:unchanged']);
  });
});

describe('prune turned off, then on again', () => {
  it('keeps what git dropped meanwhile listed, and deletes it once prune is on', async () => {
    const ns = await createTestNamespace('prune-off-on');
    const env = environmentFor(ns.name);
    const off = { ...env, prune: false };
    const kube = client();
    const configMap = (name: string) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name },
      data: {},
    });
    await deployToCluster(kube, request(env, configMap('a'), configMap('b')));

    const kept = await deployToCluster(kube, request(off, configMap('a')));
    expect(actions(kept.resources)).toEqual(['ConfigMap/a:unchanged']);
    expect(await kube.get(CONFIG_MAPS, ns.name, 'b')).toBeDefined();
    expect((await readInventory(kube, env))?.objects.map((ref) => ref.name)).toEqual(['a', 'b']);

    const pruned = await deployToCluster(kube, request(env, configMap('a')));
    expect(actions(pruned.resources)).toEqual(['ConfigMap/a:unchanged', 'ConfigMap/b:pruned']);
    expect(await kube.get(CONFIG_MAPS, ns.name, 'b')).toBeUndefined();
  });
});

describe('an object being deleted', () => {
  it('is pruned saying it waits for its finalizers, and a revert meanwhile is refused before any write and retried', async () => {
    const ns = await createTestNamespace('prune-finalizers');
    const env = environmentFor(ns.name);
    const kube = client();
    const configMap = (name: string, value = '1') => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name },
      data: { value },
    });
    await deployToCluster(kube, request(env, configMap('held'), configMap('app')));
    // What a controller adds, as the API server does for a PVC in use.
    await kube.transport.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns.name}/configmaps/held`,
      contentType: 'application/merge-patch+json',
      body: { metadata: { finalizers: ['example.com/hold'] } },
    });

    const pruned = await deployToCluster(kube, request(env, configMap('app')));
    expect(pruned.resources.find((r) => r.name === 'held')).toMatchObject({
      action: 'pruned',
      message: 'deleted; it goes once its finalizers finish (example.com/hold)',
    });

    // git revert while it waits: applying would report it unchanged, and it would still go.
    const error = await deployToCluster(kube, request(env, configMap('held'), configMap('app', '2'))).then(
      () => undefined,
      (e: unknown) => e as DeployError,
    );
    expect(error?.message).toContain(`v1 ConfigMap ${ns.name}/held: not applied: being deleted (since `);
    expect(error?.message).toContain(', until its finalizers finish: example.com/hold): ');
    expect(error?.permanent).toBe(false);
    expect((await kube.get(CONFIG_MAPS, ns.name, 'app'))?.data).toEqual({ value: '1' });

    await kube.transport.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns.name}/configmaps/held`,
      contentType: 'application/merge-patch+json',
      body: { metadata: { finalizers: null } },
    });
    const retried = await deployToCluster(kube, request(env, configMap('held'), configMap('app', '2')));
    expect(actions(retried.resources)).toEqual(['ConfigMap/app:configured', 'ConfigMap/held:created']);
  });
});

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { EnvironmentConfig } from '../../src/config/schema.js';
import { errorMessage, PushgateError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import {
  closeClusterClients,
  createClusterClient,
  type ClusterClient,
  type LiveObject,
} from '../../src/kube/cluster.js';
import { deployToCluster } from '../../src/kube/deploy.js';
import { diffAgainstCluster } from '../../src/kube/diff.js';
import { renderForCluster } from '../../src/kube/render.js';
import { readInventory, writeInventory } from '../../src/kube/inventory.js';
import type { DeployError } from '../../src/kube/types.js';
import { type DeployOutcome, type DeployRequest, type InventoryHomes } from '../../src/kube/types.js';
import { CRDS } from '../../src/kube/shared-containers.js';
import type { ResourceInfo } from '../../src/manifests/resource-info.js';
import type { LoadedManifest } from '../../src/manifests/types.js';
import type { ResourceResult } from '../../src/status/job-record.js';
import {
  CONFIG_MAPS,
  createTestNamespace,
  kubeconfigPathFromTest,
  namespacedKubeconfig,
  NAMESPACES,
  uniqueNamespaceName,
} from '../helpers/kube.js';
import { crdManifest, widgetCrd } from '../helpers/crd.js';
import { testEnvironment } from '../helpers/test-environment.js';

const ROLES: ResourceInfo = {
  group: 'rbac.authorization.k8s.io',
  version: 'v1',
  kind: 'Role',
  plural: 'roles',
  namespaced: true,
};
const SERVICES: ResourceInfo = {
  group: '',
  version: 'v1',
  kind: 'Service',
  plural: 'services',
  namespaced: true,
};
const DEPLOYMENTS: ResourceInfo = {
  group: 'apps',
  version: 'v1',
  kind: 'Deployment',
  plural: 'deployments',
  namespaced: true,
};
const SECRETS: ResourceInfo = {
  group: '',
  version: 'v1',
  kind: 'Secret',
  plural: 'secrets',
  namespaced: true,
};
const JOBS: ResourceInfo = {
  group: 'batch',
  version: 'v1',
  kind: 'Job',
  plural: 'jobs',
  namespaced: true,
};

function client(): ClusterClient {
  return createClusterClient({ name: 'test', kubeconfig: kubeconfigPathFromTest() });
}

afterAll(() => closeClusterClients());

function rbacObject(kind: string, name: string, body: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'rbac.authorization.k8s.io/v1', kind, metadata: { name }, ...body };
}

/** The rules of the worker's ClusterRole in deploy/kubernetes/rbac.yaml, as an operator installs them. */
function shippedWorkerRules(): { apiGroups: string[]; resources: string[]; verbs: string[] }[] {
  const documents = parseAllDocuments(readFileSync(path.join('deploy', 'kubernetes', 'rbac.yaml'), 'utf8'));
  const role = documents
    .map((document) => document.toJS() as Record<string, unknown>)
    .find((object) => object.kind === 'ClusterRole');
  if (!role) throw new Error('no ClusterRole in deploy/kubernetes/rbac.yaml');
  return role.rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
}

const environmentFor = testEnvironment;

/** pushgate's record of the environment's inventory namespaces, kept here as the worker keeps it in Redis. */
function inventoryHomes(...recorded: string[]): InventoryHomes & { recorded: string[] } {
  const homes = {
    recorded,
    add: (namespace: string) => {
      if (!homes.recorded.includes(namespace)) homes.recorded = [...homes.recorded, namespace];
      return Promise.resolve();
    },
    remove: (namespace: string) => {
      homes.recorded = homes.recorded.filter((recorded) => recorded !== namespace);
      return Promise.resolve();
    },
  };
  return homes;
}

function manifests(...objects: Record<string, unknown>[]): LoadedManifest[] {
  return objects.map((object, index) => ({
    object: object as LoadedManifest['object'],
    source: { file: 'env/app.yaml', document: index + 1 },
  }));
}

function configMap(
  name: string,
  data: Record<string, string> = { key: 'value' },
  metadata: Record<string, unknown> = {},
) {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ...metadata }, data };
}

function service(name: string, port: number) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { selector: { app: name }, ports: [{ port }] },
  };
}

/** A Service annotated `pushgate.dev/force: enabled`, selecting pods labelled app=<name>. */
function forcedService(name: string, spec: Record<string, unknown>) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, annotations: { 'pushgate.dev/force': 'enabled' } },
    spec: { selector: { app: name }, ...spec },
  };
}

/**
 * Deploys a forced Service as `first`, then as `then` (an immutable change), each in a
 * namespace of its own: checks it was replaced, and gives its live spec.
 */
async function replacedService(
  label: string,
  first: ReturnType<typeof forcedService>,
  then: ReturnType<typeof forcedService>,
): Promise<unknown> {
  const ns = await createTestNamespace(label);
  const env = environmentFor(ns.name);
  const kube = client();
  await deployToCluster(kube, request(env, manifests(first)));

  const outcome = await deployToCluster(kube, request(env, manifests(then)));

  expect(outcome.resources[0]).toMatchObject({
    action: 'configured',
    message: expect.stringMatching(/^replaced/) as unknown,
  });
  return (await kube.get(SERVICES, ns.name, then.metadata.name))?.spec;
}

/**
 * Deploys a forced Service as `first`, then as `then`, which is refused: the refusal, and the
 * live Service before and after it.
 */
async function refusedForcedChange(
  label: string,
  first: ReturnType<typeof forcedService>,
  then: ReturnType<typeof forcedService>,
): Promise<{ error: DeployError; before: LiveObject | undefined; after: LiveObject | undefined }> {
  const ns = await createTestNamespace(label);
  const env = environmentFor(ns.name);
  const kube = client();
  await deployToCluster(kube, request(env, manifests(first)));
  const before = await kube.get(SERVICES, ns.name, first.metadata.name);

  const error = await rejection(deployToCluster(kube, request(env, manifests(then))));

  return { error, before, after: await kube.get(SERVICES, ns.name, then.metadata.name) };
}

function deployment(name: string, replicas = 2) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] },
      },
    },
  };
}

interface Writes {
  count: number;
}

function request(
  environment: EnvironmentConfig,
  objects: LoadedManifest[],
  extra: Partial<DeployRequest> = {},
): DeployRequest & Writes {
  const state = {
    environment,
    manifests: objects,
    sha: randomBytes(20).toString('hex'),
    jobId: 'job-1',
    logger: silentLogger(),
    count: 0,
    assertLockHeld: () => {
      state.count++;
      return Promise.resolve();
    },
    ...extra,
  };
  return state;
}

/**
 * A CRD of Certificates, and a Certificate of it with its Ready condition: no status subresource
 * and no controller, so the manifest carries the status a controller would write.
 */
function certificates(namespace: string) {
  const group = `${namespace}.health.example.com`;
  const crd = crdManifest({ group, kind: 'Certificate', plural: 'certificates', spec: { type: 'object' } });
  const schema = crd.spec.versions[0]!.schema.openAPIV3Schema as { properties: Record<string, unknown> };
  schema.properties.status = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  const certificate = (name: string, ready: string, reason?: string) => ({
    apiVersion: `${group}/v1`,
    kind: 'Certificate',
    metadata: { name },
    spec: {},
    status: { conditions: [{ type: 'Ready', status: ready, ...(reason === undefined ? {} : { reason }) }] },
  });
  return { group, crd, certificate };
}

/**
 * Starts a deploy and resolves once its health wait has read the objects (the test then plays
 * the controller), with the deploy's outcome and its progress lines as they come.
 */
async function deployIntoHealthWait(
  kube: ClusterClient,
  env: EnvironmentConfig,
  objects: LoadedManifest[],
): Promise<{ outcome: Promise<DeployOutcome>; progress: string[] }> {
  const progress: string[] = [];
  const outcome = deployToCluster(
    kube,
    request(env, objects, { onProgress: (message) => progress.push(message) }),
  );
  // Kept from failing unobserved while the wait is awaited; the test awaits it itself.
  outcome.catch(() => undefined);
  // Said after the wait's first round: it has seen the objects.
  await expect
    .poll(() => progress.some((m) => m.startsWith('waiting until')), { timeout: 10_000 })
    .toBe(true);
  return { outcome, progress };
}

async function rejection(promise: Promise<unknown>): Promise<DeployError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PushgateError);
  return error as DeployError;
}

function actions(resources: { kind: string; name: string; action: string }[]): string[] {
  return resources.map((r) => `${r.kind}/${r.name}:${r.action}`);
}

describe('deployToCluster', () => {
  it('creates, then leaves unchanged objects unwritten, then configures only what changed', async () => {
    const ns = await createTestNamespace('apply-cycle');
    const env = environmentFor(ns.name);
    const kube = client();

    const first = await deployToCluster(
      kube,
      request(env, manifests(configMap('a'), configMap('b'), service('web', 80))),
    );
    expect(actions(first.resources)).toEqual([
      'ConfigMap/a:created',
      'ConfigMap/b:created',
      'Service/web:created',
    ]);
    const before = await kube.get(CONFIG_MAPS, ns.name, 'a');
    expect(before?.metadata.labels?.['pushgate.dev/environment']).toBe(env.name);

    const again = request(env, manifests(configMap('a'), configMap('b'), service('web', 80)));
    const second = await deployToCluster(kube, again);
    expect(actions(second.resources)).toEqual([
      'ConfigMap/a:unchanged',
      'ConfigMap/b:unchanged',
      'Service/web:unchanged',
    ]);
    const after = await kube.get(CONFIG_MAPS, ns.name, 'a');
    expect(after?.metadata.resourceVersion).toBe(before?.metadata.resourceVersion);

    const untouched = (await kube.get(CONFIG_MAPS, ns.name, 'b'))?.metadata.resourceVersion;
    const third = await deployToCluster(
      kube,
      request(env, manifests(configMap('a', { key: 'new' }), configMap('b'), service('web', 80))),
    );
    expect(actions(third.resources)).toEqual([
      'ConfigMap/a:configured',
      'ConfigMap/b:unchanged',
      'Service/web:unchanged',
    ]);
    expect((await kube.get(CONFIG_MAPS, ns.name, 'a'))?.data).toEqual({ key: 'new' });
    expect((await kube.get(CONFIG_MAPS, ns.name, 'b'))?.metadata.resourceVersion).toBe(untouched);
  });

  it('reports objects as they land, so a worker killed mid-group leaves what it wrote on record', async () => {
    const ns = await createTestNamespace('apply-progress');
    const env = environmentFor(ns.name);
    const lists: ResourceResult[][] = [];
    const many = Array.from({ length: 40 }, (_, index) => configMap(`cm-${index}`));

    const outcome = await deployToCluster(
      client(),
      request(env, manifests(...many), {
        onWritten: (resources) => Promise.resolve(void lists.push(resources)),
      }),
    );

    // The first report came after the first object landed, while the group was still going
    // (at most 32 at a time): some created, the rest not reached yet.
    const first = lists[0]!;
    expect(first.filter((r) => r.action === 'created').length).toBeGreaterThan(0);
    expect(first.filter((r) => r.action === 'skipped').length).toBeGreaterThan(0);
    // The last report, after the prune, is the outcome.
    expect(lists.at(-1)).toEqual(outcome.resources);
  });

  it('names the objects it is about to create or change before it writes any of them', async () => {
    const ns = await createTestNamespace('apply-creating');
    const env = environmentFor(ns.name);
    const kube = client();
    await deployToCluster(kube, request(env, manifests(configMap('kept'), configMap('changed'))));
    const announced: { planned: string[]; asBefore: string[] }[] = [];

    await deployToCluster(
      kube,
      request(
        env,
        manifests(
          configMap('kept'),
          configMap('changed', { key: 'new' }),
          configMap('new-a'),
          configMap('new-b'),
          service('web', 80),
        ),
        {
          onChanging: async (resources) => {
            const live = await Promise.all(
              resources.map(({ kind, name }) =>
                kube.get(kind === 'Service' ? SERVICES : CONFIG_MAPS, ns.name, name),
              ),
            );
            announced.push({
              planned: resources.map(({ name, action }) => `${name}:${action}`),
              // Not there yet, or still holding what the first deploy wrote.
              asBefore: resources
                .filter((_, index) => {
                  const data = live[index]?.data as Record<string, string> | undefined;
                  return !data || data.key === 'value';
                })
                .map(({ name }) => name),
            });
          },
        },
      ),
    );

    // Only what changes, kind group by kind group, and none of it written yet: an attempt that
    // cannot record the writes (killed, its answers lost) no longer leaves them unaccounted for,
    // and one stopped before a group leaves no word of that group.
    expect(announced).toEqual([
      {
        planned: ['changed:configured', 'new-a:created', 'new-b:created'],
        asBefore: ['changed', 'new-a', 'new-b'],
      },
      { planned: ['web:created'], asBefore: ['web'] },
    ]);
  });

  it('puts what it pruned on record before the inventory forgets it', async () => {
    const ns = await createTestNamespace('apply-prune-record');
    const env = environmentFor(ns.name);
    const kube = client();
    await deployToCluster(
      kube,
      request(env, manifests(configMap('keep'), configMap('gone-a'), configMap('gone-b'))),
    );
    const recorded: { pruned: string[]; listed: string[] }[] = [];

    await deployToCluster(
      kube,
      request(env, manifests(configMap('keep')), {
        onWritten: async (resources) => {
          const inventory = await readInventory(kube, env);
          recorded.push({
            pruned: resources
              .filter((r) => r.action === 'pruned')
              .map((r) => r.name)
              .sort(),
            listed: (inventory?.objects ?? []).map((ref) => ref.name),
          });
        },
      }),
    );

    // An attempt taking over once the inventory no longer lists them finds nothing stale:
    // this record is the only word that they were pruned.
    const first = recorded.find((entry) => entry.pruned.length > 0);
    expect(first?.pruned).toEqual(['gone-a', 'gone-b']);
    expect(first?.listed).toEqual(expect.arrayContaining(['gone-a', 'gone-b']));
    expect((await readInventory(kube, env))?.objects.map((ref) => ref.name)).toEqual(['keep']);
  });

  it('classifies a crowded collection (read with one LIST) the same way', async () => {
    const ns = await createTestNamespace('apply-crowded');
    const env = environmentFor(ns.name);
    const kube = client();
    const names = Array.from({ length: 12 }, (_, i) => `cm-${String(i).padStart(2, '0')}`);
    await deployToCluster(kube, request(env, manifests(...names.map((name) => configMap(name)))));

    const outcome = await deployToCluster(
      kube,
      request(
        env,
        manifests(...names.map((name) => configMap(name, { key: name === 'cm-05' ? 'changed' : 'value' }))),
      ),
    );

    expect(
      outcome.resources.filter((r) => r.action !== 'unchanged').map((r) => `${r.name}:${r.action}`),
    ).toEqual(['cm-05:configured']);
  });

  it('prunes removed objects but keeps annotated ones and ones that lost the environment label', async () => {
    const ns = await createTestNamespace('apply-prune');
    const env = environmentFor(ns.name);
    const kube = client();
    await deployToCluster(
      kube,
      request(
        env,
        manifests(
          configMap('keep'),
          configMap('gone'),
          configMap('protected', {}, { annotations: { 'pushgate.dev/prune': 'disabled' } }),
          configMap('claimed'),
        ),
      ),
    );
    // Someone took "claimed" over: it no longer carries the environment label.
    await kube.transport.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns.name}/configmaps/claimed`,
      contentType: 'application/merge-patch+json',
      body: { metadata: { labels: { 'pushgate.dev/environment': null } } },
    });

    const outcome = await deployToCluster(kube, request(env, manifests(configMap('keep'))));

    expect(actions(outcome.resources)).toEqual([
      'ConfigMap/keep:unchanged',
      // Prune goes in reverse apply order.
      'ConfigMap/protected:skipped',
      'ConfigMap/gone:pruned',
      'ConfigMap/claimed:skipped',
    ]);
    expect(await kube.get(CONFIG_MAPS, ns.name, 'gone')).toBeUndefined();
    expect(await kube.get(CONFIG_MAPS, ns.name, 'claimed')).toBeDefined();
    const inventory = await readInventory(kube, env);
    expect(inventory?.objects).toEqual([
      { apiVersion: 'v1', kind: 'ConfigMap', namespace: ns.name, name: 'keep' },
    ]);
    // Kept and forgotten, the annotated one is released: another environment may declare it.
    expect(outcome.resources.find((r) => r.name === 'protected')?.message).toBe(
      'not pruned: annotated pushgate.dev/prune: disabled; released (label pushgate.dev/environment removed)',
    );
    const protectedLabels = (await kube.get(CONFIG_MAPS, ns.name, 'protected'))?.metadata.labels ?? {};
    expect(protectedLabels['pushgate.dev/environment']).toBeUndefined();
    const other = environmentFor(ns.name);
    const adopted = await deployToCluster(
      kube,
      request(
        other,
        manifests(configMap('protected', {}, { annotations: { 'pushgate.dev/prune': 'disabled' } })),
      ),
    );
    expect(actions(adopted.resources)).toEqual(['ConfigMap/protected:configured']);
  });

  it('says so when the inventory of an environment deployed before is gone: what it listed is no longer pruned', async () => {
    const ns = await createTestNamespace('apply-lost-inventory');
    const env = environmentFor(ns.name);
    const kube = client();
    const first = request(env, manifests(configMap('keep'), configMap('gone')));
    await deployToCluster(kube, first);
    await kube.delete(CONFIG_MAPS, ns.name, `pushgate-inventory-${env.name}`, undefined);

    const outcome = await deployToCluster(
      kube,
      request(env, manifests(configMap('keep')), { lastAppliedSha: first.sha }),
    );

    expect(actions(outcome.resources)).toEqual(['ConfigMap/keep:unchanged']);
    expect(outcome.warnings).toEqual([
      `inventory ConfigMap ${ns.name}/pushgate-inventory-${env.name} was missing, though ${env.name} was deployed ` +
        `before (at ${first.sha.slice(0, 12)}): objects removed from git since then are not pruned; they carry the ` +
        `label pushgate.dev/environment=${env.name}`,
    ]);
    expect(await kube.get(CONFIG_MAPS, ns.name, 'gone')).toBeDefined();
    // Said on a deploy that then fails too: the failed job keeps it.
    await kube.delete(CONFIG_MAPS, ns.name, `pushgate-inventory-${env.name}`, undefined);
    const failed = await rejection(
      deployToCluster(
        kube,
        request(env, manifests(configMap('keep'), service('broken', 70_000)), { lastAppliedSha: first.sha }),
      ),
    );
    expect(failed.warnings).toEqual([expect.stringMatching(/ was missing, though /)]);
    // A first deploy has no inventory either, and nothing to warn about.
    const fresh = await deployToCluster(
      kube,
      request(environmentFor(ns.name), manifests(configMap('new-one')), { lastAppliedSha: null }),
    );
    expect(fresh.warnings).toBeUndefined();
  });

  it("prunes what an environment applied in its old namespace once its namespace is changed, as Flux's targetNamespace does", async () => {
    const before = await createTestNamespace('apply-moved-from');
    const after = await createTestNamespace('apply-moved-to');
    const env = environmentFor(before.name);
    const kube = client();
    const homes = inventoryHomes();
    const first = request(env, manifests(configMap('web'), configMap('only-before')), {
      inventoryHomes: homes,
    });
    await deployToCluster(kube, first);
    expect(homes.recorded).toEqual([before.name]);

    // As a rename usually goes: the old namespace is still allowed, so its objects may be pruned.
    const moved = environmentFor(after.name, {
      name: env.name,
      allow: { namespaces: [before.name, after.name], clusterScoped: false },
    });
    const outcome = await deployToCluster(
      kube,
      request(moved, manifests(configMap('web')), { lastAppliedSha: first.sha, inventoryHomes: homes }),
    );

    expect(outcome.resources.map((r) => `${r.namespace}/${r.name}:${r.action}`).sort()).toEqual(
      [`${after.name}/web:created`, `${before.name}/web:pruned`, `${before.name}/only-before:pruned`].sort(),
    );
    expect(await kube.get(CONFIG_MAPS, before.name, 'web')).toBeUndefined();
    expect(await kube.get(CONFIG_MAPS, before.name, 'only-before')).toBeUndefined();
    expect(await kube.get(CONFIG_MAPS, before.name, `pushgate-inventory-${env.name}`)).toBeUndefined();
    expect((await readInventory(kube, moved))?.objects).toEqual([
      { apiVersion: 'v1', kind: 'ConfigMap', namespace: after.name, name: 'web' },
    ]);
    expect(homes.recorded).toEqual([after.name]);
    expect(outcome.warnings).toEqual([
      `inventory of ${env.name} found in namespace ${before.name}, not ${after.name} (the environment's namespace ` +
        `was changed): what it lists and git no longer holds is pruned (where allow.namespaces permits), and the ` +
        `inventory moves to ${after.name}`,
    ]);

    // The next deploy finds one inventory, in the new namespace, and nothing to say.
    const againRequest = request(moved, manifests(configMap('web')), { inventoryHomes: homes });
    const again = await deployToCluster(kube, againRequest);
    expect(actions(again.resources)).toEqual(['ConfigMap/web:unchanged']);
    expect(again.warnings).toBeUndefined();
    // An inventory nobody recorded (written before pushgate kept the record) gets on it at the
    // next deploy, even one that changes nothing.
    const unrecorded = inventoryHomes();
    await deployToCluster(
      kube,
      request(moved, manifests(configMap('web')), { inventoryHomes: unrecorded, sha: againRequest.sha }),
    );
    expect(unrecorded.recorded).toEqual([after.name]);
  });

  it('finishes a move that stopped after writing the new inventory: the next deploy still retires the old one', async () => {
    const before = await createTestNamespace('apply-move-stopped-from');
    const after = await createTestNamespace('apply-move-stopped-to');
    const env = environmentFor(before.name);
    const kube = client();
    const homes = inventoryHomes();
    await deployToCluster(kube, request(env, manifests(configMap('web')), { inventoryHomes: homes }));
    const moved = environmentFor(after.name, {
      name: env.name,
      allow: { namespaces: [before.name, after.name], clusterScoped: false },
    });
    // The lock is lost as soon as the new inventory records this commit.
    const stopped = request(moved, manifests(configMap('web')), { inventoryHomes: homes });
    stopped.assertLockHeld = async () => {
      if ((await readInventory(kube, moved))?.revision === stopped.sha) throw new Error('lock lost');
    };
    await expect(deployToCluster(kube, stopped)).rejects.toThrow('lock lost');
    expect(await kube.get(CONFIG_MAPS, before.name, `pushgate-inventory-${env.name}`)).toBeDefined();

    // pushgate's record still names the old namespace: the job's retry finishes the move.
    expect(homes.recorded).toEqual([before.name, after.name]);
    const retried = await deployToCluster(
      kube,
      request(moved, manifests(configMap('web')), { inventoryHomes: homes }),
    );

    expect(retried.resources.map((r) => `${r.namespace}/${r.name}:${r.action}`)).toContain(
      `${before.name}/web:pruned`,
    );
    expect(await kube.get(CONFIG_MAPS, before.name, `pushgate-inventory-${env.name}`)).toBeUndefined();
  });

  it('undoes a move whose deploy failed when the namespace changes back: nothing is left in the other', async () => {
    const first = await createTestNamespace('apply-move-back-a');
    const second = await createTestNamespace('apply-move-back-b');
    const allow = { namespaces: [first.name, second.name], clusterScoped: false };
    const inFirst = environmentFor(first.name, { allow });
    const inSecond = environmentFor(second.name, { name: inFirst.name, allow, healthTimeout: '1s' });
    const kube = client();
    const homes = inventoryHomes();
    await deployToCluster(kube, request(inFirst, manifests(configMap('web')), { inventoryHomes: homes }));
    // Moved, with a Deployment that never becomes ready: applied and pruned, then failed.
    await rejection(
      deployToCluster(
        kube,
        request(inSecond, manifests(configMap('web'), deployment('api')), { inventoryHomes: homes }),
      ),
    );
    expect(homes.recorded).toEqual([second.name]);

    const back = await deployToCluster(
      kube,
      request(inFirst, manifests(configMap('web')), { inventoryHomes: homes }),
    );

    expect(back.resources.map((r) => `${r.namespace}/${r.name}:${r.action}`).sort()).toEqual(
      [`${first.name}/web:created`, `${second.name}/api:pruned`, `${second.name}/web:pruned`].sort(),
    );
    expect(await kube.get(CONFIG_MAPS, second.name, `pushgate-inventory-${inFirst.name}`)).toBeUndefined();
    expect(homes.recorded).toEqual([first.name]);
  });

  it("keeps two installations' same-named environments apart: neither takes, prunes from nor deletes the other's inventory", async () => {
    const theirs = await createTestNamespace('apply-installations-theirs');
    const ours = await createTestNamespace('apply-installations-ours');
    const allow = { namespaces: ['*'], clusterScoped: false };
    const env = environmentFor(theirs.name, { allow });
    const kube = client();
    await deployToCluster(kube, request(env, manifests(configMap('web')), { installation: 'one' }));

    // Deployed by the other installation to the same namespace: refused, nothing written.
    const clash = await rejection(
      deployToCluster(kube, request(env, manifests(configMap('other')), { installation: 'two' })),
    );
    expect(clash.message).toMatch(
      // No SET to run for an id pushgate could not have made (the annotation is the cluster's to say).
      /was written by another pushgate installation \(one; this one is two\), whose environment has the same name.*nothing was changed$/,
    );
    expect(await kube.get(CONFIG_MAPS, theirs.name, 'other')).toBeUndefined();

    // Its record names that namespace (it deployed there once): the inventory found there now is not its own.
    const homes = inventoryHomes(theirs.name);
    const moved = await deployToCluster(
      kube,
      request(environmentFor(ours.name, { name: env.name, allow }), manifests(configMap('web')), {
        installation: 'two',
        inventoryHomes: homes,
      }),
    );
    expect(moved.resources.map((r) => `${r.namespace}/${r.name}:${r.action}`)).toEqual([
      `${ours.name}/web:created`,
    ]);
    expect(await kube.get(CONFIG_MAPS, theirs.name, 'web')).toBeDefined();
    expect((await readInventory(kube, env))?.installation).toBe('one');
    expect(homes.recorded).toEqual([ours.name]);
  });

  it('keeps a Namespace that a same-named environment of another installation has objects in', async () => {
    const home = await createTestNamespace('apply-installations-home');
    const shared = uniqueNamespaceName('apply-installations-shared');
    const declaring = environmentFor(home.name, { allow: { namespaces: ['*'], clusterScoped: true } });
    const kube = client();
    const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: shared } };
    await deployToCluster(
      kube,
      request(declaring, manifests(namespace, configMap('web')), { installation: 'two' }),
    );
    const other = environmentFor(shared, { name: declaring.name });
    await deployToCluster(kube, request(other, manifests(configMap('theirs')), { installation: 'one' }));

    const outcome = await deployToCluster(
      kube,
      request(declaring, manifests(configMap('web')), { installation: 'two' }),
    );

    expect(outcome.resources.find((r) => r.kind === 'Namespace')).toMatchObject({
      action: 'skipped',
      message: `not pruned: environment ${declaring.name} of another pushgate installation has objects in it (deleting it would delete them)`,
    });
  });

  it("never takes the inventory of a same-named environment it has no record of (another installation's)", async () => {
    const theirs = await createTestNamespace('apply-same-name-theirs');
    const ours = await createTestNamespace('apply-same-name-ours');
    const env = environmentFor(theirs.name);
    await deployToCluster(client(), request(env, manifests(configMap('web'))));

    const outcome = await deployToCluster(
      client(),
      request(
        environmentFor(ours.name, { name: env.name, allow: { namespaces: ['*'], clusterScoped: false } }),
        manifests(configMap('web')),
      ),
    );

    expect(outcome.resources.map((r) => `${r.namespace}/${r.name}:${r.action}`)).toEqual([
      `${ours.name}/web:created`,
    ]);
    expect(outcome.warnings).toBeUndefined();
    expect(await client().get(CONFIG_MAPS, theirs.name, 'web')).toBeDefined();
    expect(await readInventory(client(), env)).toBeDefined();
  });

  it('takes the old inventory over under RBAC bound to namespaces only', async () => {
    const before = await createTestNamespace('apply-moved-rbac-from');
    const after = await createTestNamespace('apply-moved-rbac-to');
    const env = environmentFor(before.name);
    await deployToCluster(client(), request(env, manifests(configMap('web'))));
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pushgate-rbac-'));
    const access = await namespacedKubeconfig(
      dir,
      [after.name, before.name],
      [
        { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'patch', 'delete'] },
        { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
      ],
    );
    try {
      const namespaced = createClusterClient({ name: 'namespaced', kubeconfig: access.path });
      const moved = environmentFor(after.name, {
        name: env.name,
        allow: { namespaces: [after.name, before.name], clusterScoped: false },
      });

      const outcome = await deployToCluster(
        namespaced,
        request(moved, manifests(configMap('web')), { inventoryHomes: inventoryHomes(before.name) }),
      );

      expect(outcome.resources.map((r) => `${r.namespace}/${r.name}:${r.action}`)).toEqual([
        `${after.name}/web:created`,
        `${before.name}/web:pruned`,
      ]);
      expect(await client().get(CONFIG_MAPS, before.name, `pushgate-inventory-${env.name}`)).toBeUndefined();
    } finally {
      await access.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('deploys a Role and a RoleBinding to it in one commit under the shipped namespaced RBAC', async () => {
    // Without `bind`, the API server checks a binding against the rules of the role it names,
    // which the dry-run of the set cannot read before the role exists.
    const ns = await createTestNamespace('apply-role-binding');
    const env = environmentFor(ns.name);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pushgate-rbac-'));
    const access = await namespacedKubeconfig(dir, [ns.name], shippedWorkerRules());
    const binding = (name: string, roleName: string, subjects = [{ kind: 'ServiceAccount', name: 'web' }]) =>
      rbacObject('RoleBinding', name, {
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: roleName },
        subjects,
      });
    // An application's usual Role, with `watch` and `update`.
    const reader = rbacObject('Role', 'reader', {
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'update'] }],
    });
    try {
      const worker = createClusterClient({ name: 'namespaced', kubeconfig: access.path });

      const outcome = await deployToCluster(
        worker,
        request(env, manifests(configMap('web'), reader, binding('web-reader', 'reader'))),
      );

      expect(outcome.resources.map((r) => `${r.kind}/${r.name}:${r.action}`).sort()).toEqual([
        'ConfigMap/web:created',
        'Role/reader:created',
        'RoleBinding/web-reader:created',
      ]);
      // Still refused before any write: a binding to a role neither in the cluster nor in the
      // set, and one to a role of the set whose subjects the API server would refuse.
      const refused = async (...objects: Record<string, unknown>[]) =>
        errorMessage(
          await deployToCluster(
            worker,
            request(env, manifests(configMap('web'), configMap('new'), ...objects)),
          ).catch((e: unknown) => e),
        );
      expect(await refused(binding('typo', 'raeder'))).toContain(
        `RoleBinding ${ns.name}/typo: dry-run rejected: its roleRef names Role raeder, which is neither in the cluster in namespace ${ns.name} nor in this commit`,
      );
      const writer = rbacObject('Role', 'writer', {
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['patch'] }],
      });
      expect(await refused(writer, binding('bogus', 'writer', [{ kind: 'Bogus', name: 'web' }]))).toMatch(
        /RoleBinding \S+\/bogus: dry-run rejected .*subjects\[0\]\.kind: Unsupported value: "Bogus"/,
      );
      expect(await client().get(CONFIG_MAPS, ns.name, 'new')).toBeUndefined();
      expect(await client().get(ROLES, ns.name, 'writer')).toBeUndefined();

      // A worker that may escalate roles creates roles granting more than it holds: their
      // dry-run then says nothing of whether it may bind them.
      const escalating = await namespacedKubeconfig(
        dir,
        [ns.name],
        [
          ...shippedWorkerRules(),
          { apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles'], verbs: ['escalate'] },
        ],
      );
      try {
        const escalator = createClusterClient({ name: 'escalating', kubeconfig: escalating.path });
        const secretReader = rbacObject('Role', 'secret-reader', {
          rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['x'] }],
        });
        const error = await deployToCluster(
          escalator,
          request(
            env,
            manifests(configMap('web'), configMap('new'), secretReader, binding('reads', 'secret-reader')),
          ),
        ).catch((e: unknown) => e);
        expect(errorMessage(error)).toContain(
          `RoleBinding ${ns.name}/reads: cannot be checked before its role exists: the worker may escalate roles`,
        );
        expect(await client().get(CONFIG_MAPS, ns.name, 'new')).toBeUndefined();
      } finally {
        await escalating.cleanup();
      }
    } finally {
      await access.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the shipped namespaced RBAC cannot change its Namespace, mint tokens, exec or write Endpoints', async () => {
    // Bound by a RoleBinding, a `*` rule would allow all three in the bound namespace.
    const ns = await createTestNamespace('apply-rbac-limits');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pushgate-rbac-'));
    const access = await namespacedKubeconfig(dir, [ns.name], shippedWorkerRules());
    try {
      const worker = createClusterClient({ name: 'namespaced', kubeconfig: access.path });
      const refusal = (request: Parameters<typeof worker.transport.request>[0]) =>
        worker.transport.request(request).then(
          () => 'allowed',
          (error: unknown) => (error as { status?: number }).status,
        );
      const namespacePath = `/api/v1/namespaces/${ns.name}`;

      expect(await worker.get(NAMESPACES, undefined, ns.name)).toBeDefined();
      expect(
        await refusal({
          method: 'PATCH',
          path: namespacePath,
          query: { dryRun: 'All' },
          body: { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } },
          contentType: 'application/merge-patch+json',
        }),
      ).toBe(403);
      expect(await refusal({ method: 'DELETE', path: namespacePath, query: { dryRun: 'All' } })).toBe(403);
      expect(
        await refusal({
          method: 'POST',
          path: `${namespacePath}/serviceaccounts/default/token`,
          body: { spec: { audiences: [] } },
        }),
      ).toBe(403);
      expect(await refusal({ method: 'POST', path: `${namespacePath}/pods/web/exec` })).toBe(403);
      // Hand-written Endpoints can forward a Service's traffic to another namespace (CVE-2021-25740).
      expect(
        await refusal({
          method: 'POST',
          path: `${namespacePath}/endpoints`,
          query: { dryRun: 'All' },
          body: { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'web' } },
        }),
      ).toBe(403);
      expect(
        await refusal({
          method: 'POST',
          path: `/apis/discovery.k8s.io/v1/namespaces/${ns.name}/endpointslices`,
          query: { dryRun: 'All' },
          body: {
            apiVersion: 'discovery.k8s.io/v1',
            kind: 'EndpointSlice',
            metadata: { name: 'web' },
            addressType: 'IPv4',
            endpoints: [],
          },
        }),
      ).toBe(403);
      // Nor give itself any of it through a commit: binding `cluster-admin` in its namespace is refused.
      const grab = rbacObject('RoleBinding', 'grab', {
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
        subjects: [{ kind: 'ServiceAccount', name: 'web', namespace: ns.name }],
      });
      const error = await deployToCluster(worker, request(environmentFor(ns.name), manifests(grab))).catch(
        (e: unknown) => e,
      );
      expect(errorMessage(error)).toContain('attempting to grant RBAC permissions not currently held');
    } finally {
      await access.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails the job when a prune is refused and keeps the object in the inventory for the next deploy', async () => {
    const ns = await createTestNamespace('apply-prune-fail');
    const env = environmentFor(ns.name);
    const kube = client();
    await deployToCluster(
      kube,
      request(env, manifests(configMap('keep'), configMap('undeletable'), configMap('gone'))),
    );
    // A real admission policy refuses to delete "undeletable" in this namespace.
    const policy = `deny-delete-${ns.name}`;
    await kube.transport.request({
      method: 'POST',
      path: '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies',
      body: {
        metadata: { name: policy },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: {
            resourceRules: [
              { apiGroups: [''], apiVersions: ['v1'], operations: ['DELETE'], resources: ['configmaps'] },
            ],
          },
          validations: [
            { expression: "oldObject.metadata.name != 'undeletable'", message: 'undeletable stays' },
          ],
        },
      },
    });
    await kube.transport.request({
      method: 'POST',
      path: '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings',
      body: {
        metadata: { name: policy },
        spec: {
          policyName: policy,
          validationActions: ['Deny'],
          matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns.name } } },
        },
      },
    });
    try {
      // The policy takes effect once the API server's informers see it.
      await expect
        .poll(
          async () => {
            const error = await kube.transport
              .request({
                method: 'DELETE',
                path: `/api/v1/namespaces/${ns.name}/configmaps/undeletable`,
                query: { dryRun: 'All' },
              })
              .then(
                () => undefined,
                (e: unknown) => e,
              );
            return error instanceof Error ? error.message : 'allowed';
          },
          { timeout: 20_000, interval: 200 },
        )
        .toContain('undeletable stays');

      const error = await rejection(deployToCluster(kube, request(env, manifests(configMap('keep')))));

      expect(error.code).toBe('apply_rejected');
      expect(error.permanent).toBe(true);
      expect(error.message).toContain(`v1 ConfigMap ${ns.name}/undeletable: delete failed (HTTP 422)`);
      expect(actions(error.resources)).toEqual([
        'ConfigMap/keep:unchanged',
        'ConfigMap/undeletable:failed',
        'ConfigMap/gone:pruned',
      ]);
      expect(await kube.get(CONFIG_MAPS, ns.name, 'gone')).toBeUndefined();
      expect((await readInventory(kube, env))?.objects.map((ref) => ref.name)).toEqual([
        'keep',
        'undeletable',
      ]);
    } finally {
      for (const kind of ['validatingadmissionpolicybindings', 'validatingadmissionpolicies']) {
        await kube.transport.request({
          method: 'DELETE',
          path: `/apis/admissionregistration.k8s.io/v1/${kind}/${policy}`,
        });
      }
    }
  });

  it('refuses an empty set instead of pruning everything, unless allowEmpty is set', async () => {
    const ns = await createTestNamespace('apply-empty');
    const env = environmentFor(ns.name);
    const kube = client();
    await deployToCluster(kube, request(env, manifests(configMap('precious'))));

    const error = await rejection(deployToCluster(kube, request(env, [])));

    expect(error.code).toBe('manifest_invalid');
    expect(error.permanent).toBe(true);
    expect(error.message).toContain('allowEmpty');
    expect(await kube.get(CONFIG_MAPS, ns.name, 'precious')).toBeDefined();

    const allowed = await deployToCluster(kube, request({ ...env, allowEmpty: true }, []));
    expect(actions(allowed.resources)).toEqual(['ConfigMap/precious:pruned']);
  });

  it('takes over what kubectl set by hand, so fields git does not declare go (as Flux does), but not a replica count', async () => {
    const ns = await createTestNamespace('apply-takeover');
    const env = environmentFor(ns.name);
    const kube = client();
    // `kubectl apply` (client-side) made it before pushgate adopted it, with a key git drops.
    const legacy = configMap('legacy', { a: '1', b: '2' }, { namespace: ns.name, labels: { team: 'old' } });
    await kube.transport.request({
      method: 'POST',
      path: `/api/v1/namespaces/${ns.name}/configmaps`,
      query: { fieldManager: 'kubectl-client-side-apply' },
      body: {
        ...legacy,
        metadata: {
          ...legacy.metadata,
          annotations: { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(legacy) },
        },
      },
    });

    const adopted = await deployToCluster(kube, request(env, manifests(configMap('legacy', { a: '1' }))));

    expect(actions(adopted.resources)).toEqual(['ConfigMap/legacy:configured']);
    let live = await kube.get(CONFIG_MAPS, ns.name, 'legacy');
    expect(live?.data).toEqual({ a: '1' });
    expect(live?.metadata.labels).toEqual({ 'pushgate.dev/environment': env.name });
    expect(live?.metadata.annotations).toBeUndefined();

    // Drift by hand: `kubectl patch` adds a key and `kubectl edit` scales a Deployment git does not scale.
    const web = deployment('web') as { spec: Record<string, unknown> };
    delete web.spec.replicas;
    await deployToCluster(kube, request(env, manifests(configMap('legacy', { a: '1' }), web)));
    await kube.transport.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns.name}/configmaps/legacy`,
      query: { fieldManager: 'kubectl-patch' },
      contentType: 'application/merge-patch+json',
      body: { data: { extra: 'x' } },
    });
    await kube.transport.request({
      method: 'PATCH',
      path: `/apis/apps/v1/namespaces/${ns.name}/deployments/web`,
      query: { fieldManager: 'kubectl-edit' },
      contentType: 'application/merge-patch+json',
      body: { spec: { replicas: 5 }, metadata: { labels: { 'edited-by': 'hand' } } },
    });

    const corrected = await deployToCluster(
      kube,
      request(env, manifests(configMap('legacy', { a: '1' }), web)),
    );

    expect(actions(corrected.resources)).toEqual([
      'ConfigMap/legacy:configured',
      'Deployment/web:configured',
    ]);
    live = await kube.get(CONFIG_MAPS, ns.name, 'legacy');
    expect(live?.data).toEqual({ a: '1' });
    const liveWeb = await kube.get(DEPLOYMENTS, ns.name, 'web');
    expect(liveWeb?.metadata.labels).toEqual({ 'pushgate.dev/environment': env.name });
    expect((liveWeb?.spec as { replicas: number }).replicas).toBe(5);
    // Taken over once: the next deploy finds nothing to change.
    const again = await deployToCluster(kube, request(env, manifests(configMap('legacy', { a: '1' }), web)));
    expect(actions(again.resources)).toEqual(['ConfigMap/legacy:unchanged', 'Deployment/web:unchanged']);
  });

  it('leaves what Flux applies alone; once Flux stops, an empty apply as its manager (docs/migrating.md) lets go of what git dropped', async () => {
    const ns = await createTestNamespace('apply-from-flux');
    const env = environmentFor(ns.name);
    const kube = client();
    const applyAsFlux = (body: Record<string, unknown>) =>
      kube.transport.request({
        method: 'PATCH',
        path: `/api/v1/namespaces/${ns.name}/configmaps/settings`,
        query: { fieldManager: 'kustomize-controller', force: 'true' },
        contentType: 'application/apply-patch+yaml',
        body,
      });
    await applyAsFlux(
      configMap(
        'settings',
        { a: '1', retired: 'x' },
        { namespace: ns.name, labels: { 'kustomize.toolkit.fluxcd.io/name': 'apps' } },
      ),
    );

    const adopted = await deployToCluster(kube, request(env, manifests(configMap('settings', { a: '1' }))));

    expect(actions(adopted.resources)).toEqual(['ConfigMap/settings:configured']);
    let live = await kube.get(CONFIG_MAPS, ns.name, 'settings');
    // Flux may still apply it (a shared object): its fields stay its own.
    expect(live?.data).toEqual({ a: '1', retired: 'x' });
    expect(live?.metadata.labels).toEqual({
      'kustomize.toolkit.fluxcd.io/name': 'apps',
      'pushgate.dev/environment': env.name,
    });

    await applyAsFlux({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'settings', namespace: ns.name },
    });

    live = await kube.get(CONFIG_MAPS, ns.name, 'settings');
    expect(live?.data).toEqual({ a: '1' });
    expect(live?.metadata.labels).toEqual({ 'pushgate.dev/environment': env.name });
    const again = await deployToCluster(kube, request(env, manifests(configMap('settings', { a: '1' }))));
    expect(actions(again.resources)).toEqual(['ConfigMap/settings:unchanged']);
  });

  it('creates an object annotated ssa: IfNotPresent (pushgate.dev or Flux) when absent, and otherwise leaves it as the cluster has it', async () => {
    const ns = await createTestNamespace('apply-create-only');
    const env = environmentFor(ns.name);
    const kube = client();
    const secret = (value: string) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'api-key', annotations: { 'pushgate.dev/ssa': 'IfNotPresent' } },
      stringData: { key: value },
    });
    const settings = (value: string) =>
      configMap(
        'settings',
        { v: value },
        { annotations: { 'kustomize.toolkit.fluxcd.io/ssa': 'IfNotPresent' } },
      );

    const first = await deployToCluster(kube, request(env, manifests(secret('placeholder'), settings('1'))));
    expect(actions(first.resources)).toEqual(['Secret/api-key:created', 'ConfigMap/settings:created']);
    // Its real value is set in the cluster, as the annotation is meant for.
    await kube.transport.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns.name}/secrets/api-key`,
      query: { fieldManager: 'kubectl-edit' },
      contentType: 'application/merge-patch+json',
      body: { data: { key: Buffer.from('the-real-one').toString('base64') } },
    });

    const later = request(env, manifests(secret('placeholder-2'), settings('2')));
    const diff = await diffAgainstCluster(kube, later);
    const outcome = await deployToCluster(kube, later);

    expect(diff.changes).toEqual([]);
    expect(diff.unchanged).toBe(2);
    expect(outcome.resources.map((r) => `${r.kind}/${r.name}:${r.action}:${r.message ?? ''}`)).toEqual([
      'Secret/api-key:unchanged:exists; annotated pushgate.dev/ssa: IfNotPresent, so it is created when absent and otherwise left as it is',
      'ConfigMap/settings:unchanged:exists; annotated kustomize.toolkit.fluxcd.io/ssa: IfNotPresent, so it is created when absent and otherwise left as it is',
    ]);
    expect((await kube.get(SECRETS, ns.name, 'api-key'))?.data).toEqual({
      key: Buffer.from('the-real-one').toString('base64'),
    });
    expect((await kube.get(CONFIG_MAPS, ns.name, 'settings'))?.data).toEqual({ v: '1' });

    // Gone, it is created again; dropped from git, it is pruned like any other.
    await kube.delete(CONFIG_MAPS, ns.name, 'settings', undefined);
    const recreated = await deployToCluster(kube, later);
    expect(actions(recreated.resources)).toEqual(['Secret/api-key:unchanged', 'ConfigMap/settings:created']);
    expect((await kube.get(CONFIG_MAPS, ns.name, 'settings'))?.data).toEqual({ v: '2' });
    const dropped = await deployToCluster(kube, request(env, manifests(settings('2'))));
    expect(actions(dropped.resources)).toEqual(['ConfigMap/settings:unchanged', 'Secret/api-key:pruned']);
  });

  describe("a Secret's stringData", () => {
    const secret = (stringData: Record<string, string>) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'creds' },
      stringData,
    });
    const ownedByPushgate = (live: LiveObject | undefined) =>
      (live?.metadata as { managedFields?: { manager: string; fieldsV1?: unknown }[] }).managedFields?.find(
        (entry) => entry.manager === 'pushgate',
      )?.fieldsV1;

    it('loses a key git removes, as data would', async () => {
      const ns = await createTestNamespace('apply-stringdata');
      const env = environmentFor(ns.name);
      const kube = client();
      await deployToCluster(kube, request(env, manifests(secret({ user: 'admin', password: 'hunter2' }))));

      const renamed = await deployToCluster(
        kube,
        request(env, manifests(secret({ username: 'admin', password: 'hunter2' }))),
      );

      expect(actions(renamed.resources)).toEqual(['Secret/creds:configured']);
      const live = await kube.get(SECRETS, ns.name, 'creds');
      expect(live?.data).toEqual({
        username: Buffer.from('admin').toString('base64'),
        password: Buffer.from('hunter2').toString('base64'),
      });
    });

    it("applied as stringData by an earlier pushgate: its keys become pushgate's data keys, so one git removes goes", async () => {
      const ns = await createTestNamespace('apply-stringdata-old');
      const env = environmentFor(ns.name);
      const kube = client();
      const applyAsBefore = (name: string, stringData: Record<string, string>) =>
        kube.transport.request({
          method: 'PATCH',
          path: `/api/v1/namespaces/${ns.name}/secrets/${name}`,
          query: { fieldManager: 'pushgate', force: 'true' },
          contentType: 'application/apply-patch+yaml',
          body: {
            ...secret(stringData),
            metadata: { name, namespace: ns.name, labels: { 'pushgate.dev/environment': env.name } },
          },
        });
      // What pushgate's apply of stringData left: its entry owns stringData keys, nobody the data keys.
      await applyAsBefore('creds', { user: 'admin', password: 'hunter2' });
      await applyAsBefore('kept', { token: 'abcd' });
      const named = (name: string, stringData: Record<string, string>) => ({
        ...secret(stringData),
        metadata: { name },
      });

      const first = await deployToCluster(
        kube,
        request(env, manifests(named('creds', { password: 'hunter2' }), named('kept', { token: 'abcd' }))),
      );

      // `kept` still declares every key: only who owns them moved.
      expect(actions(first.resources)).toEqual(['Secret/creds:configured', 'Secret/kept:unchanged']);
      expect((await kube.get(SECRETS, ns.name, 'creds'))?.data).toEqual({
        password: Buffer.from('hunter2').toString('base64'),
      });
      const kept = await kube.get(SECRETS, ns.name, 'kept');
      expect(kept?.data).toEqual({ token: Buffer.from('abcd').toString('base64') });
      expect(ownedByPushgate(kept)).toEqual({
        'f:data': { 'f:token': {} },
        'f:metadata': { 'f:labels': { 'f:pushgate.dev/environment': {} } },
      });
      // Moved once: the next deploy of the same commit changes nothing.
      const again = await deployToCluster(
        kube,
        request(env, manifests(named('creds', { password: 'hunter2' }), named('kept', { token: 'abcd' }))),
      );
      expect(actions(again.resources)).toEqual(['Secret/creds:unchanged', 'Secret/kept:unchanged']);
    });
  });

  describe('a named port renumbered with kubectl edit', () => {
    const web = (name = 'web') => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name },
      spec: { selector: { app: name }, ports: [{ name: 'http', port: 80 }] },
    });
    /** Ports are keyed by number: kubectl's 8080 is an entry of its own, named `http` too. */
    const renumberByHand = async (kube: ClusterClient, namespace: string, name: string) => {
      await kube.transport.request({
        method: 'PATCH',
        path: `/api/v1/namespaces/${namespace}/services/${name}`,
        query: { fieldManager: 'kubectl-edit' },
        contentType: 'application/merge-patch+json',
        body: { spec: { ports: [{ name: 'http', port: 8080, protocol: 'TCP', targetPort: 8080 }] } },
      });
    };
    const managersOf = async (kube: ClusterClient, namespace: string, name: string) => {
      const live = await kube.get(SERVICES, namespace, name);
      const entries = (live?.metadata as { managedFields?: { manager: string }[] } | undefined)
        ?.managedFields;
      return (entries ?? []).map((entry) => entry.manager).sort();
    };

    it('is put back to git, which would otherwise add the name a second time', async () => {
      const ns = await createTestNamespace('apply-takeover-port');
      const env = environmentFor(ns.name);
      const kube = client();
      await deployToCluster(kube, request(env, manifests(web(), configMap('other'))));
      await renumberByHand(kube, ns.name, 'web');
      const edited = await managersOf(kube, ns.name, 'web');

      // A commit refused for another object writes nothing, not even who owns the Service's fields.
      const broken = { ...configMap('other'), data: { key: 1 } };
      await rejection(deployToCluster(kube, request(env, manifests(web(), broken))));
      expect(await managersOf(kube, ns.name, 'web')).toEqual(edited);

      const outcome = await deployToCluster(kube, request(env, manifests(web(), configMap('other'))));

      expect(actions(outcome.resources)).toEqual(['ConfigMap/other:unchanged', 'Service/web:configured']);
      const ports = (await kube.get(SERVICES, ns.name, 'web'))?.spec as {
        ports: { name: string; port: number }[];
      };
      expect(ports.ports.map(({ name, port }) => ({ name, port }))).toEqual([{ name: 'http', port: 80 }]);
    });

    it('keeps its owner when the deploy fails before the Service is applied (a quota refuses a ConfigMap)', async () => {
      const ns = await createTestNamespace('apply-takeover-left');
      const env = environmentFor(ns.name);
      const kube = client();
      await deployToCluster(kube, request(env, manifests(web())));
      await renumberByHand(kube, ns.name, 'web');
      const edited = await managersOf(kube, ns.name, 'web');
      // Room for one more ConfigMap. (No controller manager here to count them: its status is set.)
      const used = (await kube.list(CONFIG_MAPS, ns.name)).length;
      const quota = { configmaps: String(used + 1) };
      await kube.transport.request({
        method: 'POST',
        path: `/api/v1/namespaces/${ns.name}/resourcequotas`,
        body: { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'q' }, spec: { hard: quota } },
      });
      await kube.transport.request({
        method: 'PATCH',
        path: `/api/v1/namespaces/${ns.name}/resourcequotas/q/status`,
        contentType: 'application/merge-patch+json',
        body: { status: { hard: quota, used: { configmaps: String(used) } } },
      });

      const error = await rejection(
        deployToCluster(kube, request(env, manifests(configMap('c1'), configMap('c2'), web()))),
      );

      expect(error.message).toContain('exceeded quota');
      expect(error.resources.find((resource) => resource.kind === 'Service')?.action).toBe('skipped');
      expect(await managersOf(kube, ns.name, 'web')).toEqual(edited);
    });

    it('stops the deploy at a lost lock, writing nothing after it', async () => {
      const ns = await createTestNamespace('apply-takeover-lock');
      const env = environmentFor(ns.name);
      const kube = client();
      await deployToCluster(kube, request(env, manifests(web('a'), web('b'))));
      await renumberByHand(kube, ns.name, 'a');
      await renumberByHand(kube, ns.name, 'b');
      let checks = 0;
      // Held for the first takeover, lost by the second (another worker took the job).
      const assertLockHeld = () => {
        checks += 1;
        return checks > 1
          ? Promise.reject(new PushgateError('transient', 'lost the deploy lock of environment "x"'))
          : Promise.resolve();
      };

      const error = await rejection(
        deployToCluster(kube, request(env, manifests(web('a'), web('b')), { assertLockHeld })),
      );

      // Not a rejection of the commit: the job is the other worker's now, and retried if not.
      expect(error.code).toBe('transient');
      expect(error.message).toContain('lost the deploy lock');
      // One was taken over before the loss and left so; the other not touched.
      const managers = [await managersOf(kube, ns.name, 'a'), await managersOf(kube, ns.name, 'b')];
      expect(managers).toEqual(expect.arrayContaining([['pushgate'], ['kubectl-edit', 'pushgate']]));
    });
  });

  it('rolls a Deployment out once when the commit changes its template and kubectl changed it by hand', async () => {
    const ns = await createTestNamespace('apply-takeover-once');
    const env = environmentFor(ns.name);
    const kube = client();
    const web = (image: string) => {
      const object = deployment('web');
      object.spec.template.spec.containers[0]!.image = image;
      return object;
    };
    await deployToCluster(kube, request(env, manifests(web('registry.example/app:1'))));
    // A debugging flag set with `kubectl edit` in the pod template: a rollout of its own.
    await kube.transport.request({
      method: 'PATCH',
      path: `/apis/apps/v1/namespaces/${ns.name}/deployments/web`,
      query: { fieldManager: 'kubectl-edit' },
      contentType: 'application/merge-patch+json',
      body: { spec: { template: { metadata: { annotations: { debug: 'on' } } } } },
    });
    const before = await kube.get(DEPLOYMENTS, ns.name, 'web');

    const outcome = await deployToCluster(kube, request(env, manifests(web('registry.example/app:2'))));

    expect(actions(outcome.resources)).toEqual(['Deployment/web:configured']);
    expect(outcome.warnings).toBeUndefined();
    const live = await kube.get(DEPLOYMENTS, ns.name, 'web');
    const template = (
      live?.spec as {
        template: { metadata: { annotations?: object }; spec: { containers: { image: string }[] } };
      }
    ).template;
    expect(template.spec.containers[0]!.image).toBe('registry.example/app:2');
    expect(template.metadata.annotations).toBeUndefined();
    // One change of the spec, so one new ReplicaSet: not one with git's image and the flag,
    // then one without it.
    expect(live!.metadata.generation).toBe(before!.metadata.generation! + 1);
  });

  it('leaves hand-made fields it may not remove (an immutable Job template) as they were, warning, and never gets stuck', async () => {
    const ns = await createTestNamespace('apply-takeover-job');
    const env = environmentFor(ns.name);
    const kube = client();
    const job = (annotations?: Record<string, string>) => ({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'migrate', namespace: ns.name },
      spec: {
        template: {
          metadata: annotations ? { annotations } : {},
          spec: {
            restartPolicy: 'Never',
            containers: [{ name: 'migrate', image: 'registry.example/migrate:1' }],
          },
        },
      },
    });
    await kube.transport.request({
      method: 'POST',
      path: `/apis/batch/v1/namespaces/${ns.name}/jobs`,
      query: { fieldManager: 'kubectl-client-side-apply' },
      body: job({ 'added-by-hand': 'x' }),
    });
    const { metadata: _metadata, ...rest } = job();

    for (const round of [1, 2]) {
      const outcome = await deployToCluster(
        kube,
        request(env, manifests({ ...rest, metadata: { name: 'migrate' } }, configMap(`written-${round}`))),
      );
      expect(outcome.warnings).toEqual([
        expect.stringMatching(
          new RegExp(
            `^batch/v1 Job ${ns.name}/migrate: what kubectl set by hand is left as it was: removing it was refused \\(.*field is immutable`,
          ),
        ),
      ]);
      // Short (the API server's dump of the template cut); once labelled, the Job stays unchanged.
      expect(outcome.warnings![0]!.length).toBeLessThan(600);
      expect(outcome.resources.find((resource) => resource.kind === 'Job')?.action).toBe(
        round === 1 ? 'configured' : 'unchanged',
      );
    }
    const live = await kube.get(JOBS, ns.name, 'migrate');
    const template = (live?.spec as { template: { metadata: { annotations: Record<string, string> } } })
      .template;
    expect(template.metadata.annotations).toEqual({ 'added-by-hand': 'x' });
  });

  it("replaces a Service whose clusterIP changed when forced (the API server words it 'may not change once set')", async () => {
    // From the service range's static band (its first 16 addresses; 10.0.0.1 is the API's own):
    // the API server hands out dynamic IPs above it, so another test's Service cannot take these.
    // 2–7 here, 8–13 for the nodePort test below.
    const octet = 2 + Math.floor(Math.random() * 3) * 2;
    const svc = (ip: string) => forcedService('fixed', { clusterIP: ip, ports: [{ port: 80 }] });

    const spec = await replacedService('apply-force-svc', svc(`10.0.0.${octet}`), svc(`10.0.0.${octet + 1}`));

    expect(spec).toMatchObject({ clusterIP: `10.0.0.${octet + 1}` });
  });

  it('replaces a forced Service that pins a nodePort, keeping the port', async () => {
    // From the static bands (the first addresses and node ports), which the API server hands
    // out only when asked by number: no other test's Service takes these (see the test above).
    // Node ports 30000–30039 here, 30040–30079 for the test below.
    const octet = 8 + Math.floor(Math.random() * 3) * 2;
    const nodePort = 30_000 + Math.floor(Math.random() * 40);
    const svc = (ip: string) =>
      forcedService('edge', { type: 'NodePort', clusterIP: ip, ports: [{ port: 80, nodePort }] });

    const spec = await replacedService(
      'apply-force-nodeport',
      svc(`10.0.0.${octet}`),
      svc(`10.0.0.${octet + 1}`),
    );

    expect(spec).toMatchObject({
      clusterIP: `10.0.0.${octet + 1}`,
      ports: [expect.objectContaining({ port: 80, nodePort })],
    });
  });

  it('replaces a forced LoadBalancer Service that pins its health check node port, keeping it', async () => {
    // 10.0.0.14–15 and node ports 30080–30081: the static bands' that no other test takes.
    const svc = (ip: string) =>
      forcedService('lb', {
        type: 'LoadBalancer',
        clusterIP: ip,
        externalTrafficPolicy: 'Local',
        healthCheckNodePort: 30_081,
        ports: [{ port: 80, nodePort: 30_080 }],
      });

    const spec = await replacedService('apply-force-health', svc('10.0.0.14'), svc('10.0.0.15'));

    expect(spec).toMatchObject({
      clusterIP: '10.0.0.15',
      healthCheckNodePort: 30_081,
      ports: [expect.objectContaining({ nodePort: 30_080 })],
    });
  });

  it('creates a forced Service again as it was when its new version is refused only after the delete', async () => {
    // A pinned clusterIP (immutable: forced) and a node port outside the cluster's range,
    // which the dry-run of a creation lets through and only the create itself refuses.
    const { error, before, after } = await refusedForcedChange(
      'apply-force-restore',
      forcedService('gate', { type: 'NodePort', ports: [{ port: 80, nodePort: 30_082 }] }),
      forcedService('gate', {
        type: 'NodePort',
        clusterIP: '10.0.0.14',
        ports: [{ port: 80, nodePort: 29_000 }],
      }),
    );

    expect(error.message).toContain('not in the valid range');
    expect(error.message).toContain('deleted to be replaced, then created again as it was');
    expect(after?.metadata.uid).not.toBe(before?.metadata.uid);
    expect(after?.spec).toMatchObject({
      clusterIP: (before?.spec as { clusterIP: string }).clusterIP,
      ports: [expect.objectContaining({ port: 80, nodePort: 30_082 })],
    });
  });

  it('never deletes a forced Service whose new version the API server would refuse to create', async () => {
    const nodePort = 30_040 + Math.floor(Math.random() * 40);
    // A new pinned clusterIP (immutable: forced), and type ClusterIP with the node port left in,
    // which no Service may have. (10.0.0.14: refused, so never allocated.)
    const { error, before, after } = await refusedForcedChange(
      'apply-force-invalid',
      forcedService('edge', { type: 'NodePort', ports: [{ port: 80, nodePort }] }),
      forcedService('edge', { type: 'ClusterIP', clusterIP: '10.0.0.14', ports: [{ port: 80, nodePort }] }),
    );

    expect(error.message).toMatch(
      /^server-side dry-run rejected the set, nothing was changed: .*may not be used when `type` is 'ClusterIP'/,
    );
    expect(after?.metadata.uid).toBe(before?.metadata.uid);
  });

  it("keeps a Namespace another environment's objects live in when the one that declared it drops it", async () => {
    const home = await createTestNamespace('apply-shared-ns');
    const shared = uniqueNamespaceName('apply-shared-x');
    const owner = environmentFor(home.name, {
      allow: { namespaces: [home.name, shared], clusterScoped: true },
    });
    const tenant = environmentFor(home.name, { allow: { namespaces: [shared], clusterScoped: false } });
    const kube = client();
    const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: shared } };
    await deployToCluster(kube, request(owner, manifests(namespace, configMap('a'))));
    await deployToCluster(kube, request(tenant, manifests(configMap('b-data', {}, { namespace: shared }))));

    const outcome = await deployToCluster(kube, request(owner, manifests(configMap('a'))));

    expect(outcome.resources.find((resource) => resource.kind === 'Namespace')).toMatchObject({
      action: 'skipped',
      message: `not pruned: environment ${tenant.name} has objects in it (deleting it would delete them)`,
    });
    const live = await kube.get(NAMESPACES, undefined, shared);
    expect(live?.metadata.deletionTimestamp).toBeUndefined();
    await kube.delete(NAMESPACES, undefined, shared, undefined);
  });

  it("names an immutable field's change in a line, not in the API server's 2 KB dump of the pod template", async () => {
    const ns = await createTestNamespace('apply-immutable');
    const env = environmentFor(ns.name);
    const kube = client();
    const job = (image: string) => ({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'migrate' },
      spec: {
        template: {
          spec: { restartPolicy: 'Never', containers: [{ name: 'migrate', image }] },
        },
      },
    });
    await deployToCluster(kube, request(env, manifests(job('registry.example/migrate:1'))));

    const error = await rejection(
      deployToCluster(kube, request(env, manifests(job('registry.example/migrate:2')))),
    );

    expect(error.message).toContain('spec.template: Invalid value: {…}: field is immutable');
    expect(error.message.length).toBeLessThan(600);
  });

  it('replaces an object whose immutable field changed when it says pushgate.dev/force: enabled, checking the new one first', async () => {
    const ns = await createTestNamespace('apply-force');
    const env = environmentFor(ns.name);
    const kube = client();
    const job = (image: string, extra: Record<string, unknown> = {}) => ({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'migrate', annotations: { 'pushgate.dev/force': 'enabled' } },
      spec: {
        template: { spec: { restartPolicy: 'Never', containers: [{ name: 'migrate', image, ...extra }] } },
      },
    });
    await deployToCluster(
      kube,
      request(env, manifests(job('registry.example/migrate:1'), configMap('other'))),
    );
    const before = await kube.get(JOBS, ns.name, 'migrate');

    // A new version that would not be valid even as a new object: nothing is deleted.
    const invalid = await rejection(deployToCluster(kube, request(env, manifests(job('')))));
    expect(invalid.message).toMatch(/image: Required value/);
    expect((await kube.get(JOBS, ns.name, 'migrate'))?.metadata.uid).toBe(before?.metadata.uid);

    const outcome = await deployToCluster(
      kube,
      request(env, manifests(job('registry.example/migrate:2'), configMap('other'))),
    );

    const replaced = outcome.resources.find((resource) => resource.kind === 'Job')!;
    expect(replaced).toMatchObject({
      action: 'configured',
      message: expect.stringMatching(/^replaced: /) as unknown,
    });
    const after = await kube.get(JOBS, ns.name, 'migrate');
    expect(after?.metadata.uid).not.toBe(before?.metadata.uid);
    const spec = after?.spec as { template: { spec: { containers: { image: string }[] } } };
    expect(spec.template.spec.containers[0]!.image).toBe('registry.example/migrate:2');

    // Replaced, then never complete: the job record still says it was replaced.
    const waited = { ...env, healthTimeout: 1_000 };
    const unhealthy = await rejection(
      deployToCluster(
        kube,
        request(waited, manifests(job('registry.example/migrate:3'), configMap('other'))),
      ),
    );
    expect(unhealthy.resources.find((resource) => resource.kind === 'Job')?.message).toMatch(
      /^replaced: deleted and created again .*; not ready: /,
    );
  });

  it("refuses an object another environment manages, writing nothing, so neither relabels nor prunes the other's", async () => {
    const ns = await createTestNamespace('apply-owned');
    const staging = environmentFor(ns.name);
    const shared = environmentFor(ns.name);
    const kube = client();
    await deployToCluster(kube, request(staging, manifests(service('web', 80))));

    const error = await rejection(
      deployToCluster(kube, request(shared, manifests(configMap('mine'), service('web', 8080)))),
    );

    expect(error.code).toBe('apply_rejected');
    expect(error.permanent).toBe(true);
    expect(error.message).toBe(
      `server-side dry-run rejected the set, nothing was changed: env/app.yaml document 2: v1 Service ${ns.name}/web: not applied: managed by environment ` +
        `${staging.name} (label pushgate.dev/environment=${staging.name}), not ${shared.name}: an object belongs ` +
        `to one environment (to hand it over: declare it here, relabel it pushgate.dev/environment=${shared.name}, ` +
        `then drop it from ${staging.name}'s branch; docs/deploys.md §4)`,
    );
    expect(actions(error.resources)).toEqual(['ConfigMap/mine:skipped', 'Service/web:failed']);
    const live = await kube.get(SERVICES, ns.name, 'web');
    expect(live?.metadata.labels?.['pushgate.dev/environment']).toBe(staging.name);
    expect((live?.spec as { ports: { port: number }[] }).ports[0]!.port).toBe(80);
    expect(await kube.get(CONFIG_MAPS, ns.name, 'mine')).toBeUndefined();

    // Relabelled by hand (the hand-over), it is the other environment's to apply and, later, to prune.
    await kube.transport.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns.name}/services/web`,
      contentType: 'application/merge-patch+json',
      body: { metadata: { labels: { 'pushgate.dev/environment': shared.name } } },
    });
    const outcome = await deployToCluster(kube, request(shared, manifests(service('web', 8080))));
    expect(actions(outcome.resources)).toEqual(['Service/web:configured']);
    const pruning = await deployToCluster(kube, request(staging, manifests(configMap('other'))));
    expect(actions(pruning.resources)).toEqual(['ConfigMap/other:created', 'Service/web:skipped']);
    expect(await kube.get(SERVICES, ns.name, 'web')).toBeDefined();
  });

  it('fails a forbidden namespace with policy_violation and applies nothing', async () => {
    const ns = await createTestNamespace('apply-policy');
    const env = environmentFor(ns.name);
    const kube = client();

    const error = await rejection(
      deployToCluster(
        kube,
        request(env, manifests(configMap('fine'), configMap('elsewhere', {}, { namespace: 'kube-system' }))),
      ),
    );

    expect(error.code).toBe('policy_violation');
    expect(error.permanent).toBe(true);
    expect(error.message).toBe(
      `env/app.yaml document 2: v1 ConfigMap kube-system/elsewhere: namespace "kube-system" is not allowed for environment ${env.name} (allow.namespaces: ${ns.name}, ${ns.name}-*)`,
    );
    // The refused object failed, naming why; the other was held back with it.
    expect(error.resources.map((r) => [r.name, r.action])).toEqual([
      ['fine', 'skipped'],
      ['elsewhere', 'failed'],
    ]);
    expect(error.resources[1]!.message).toContain('namespace "kube-system" is not allowed');
    expect(await kube.get(CONFIG_MAPS, ns.name, 'fine')).toBeUndefined();
  });

  it('holds a Namespace written as apiVersion "/v1" (the core group, to the API server) to allow.namespaces', async () => {
    const ns = await createTestNamespace('apply-slash-v1');
    const victim = await createTestNamespace('apply-slash-victim');
    const env = environmentFor(ns.name, { allow: { namespaces: [ns.name], clusterScoped: true } });
    const kube = client();

    const error = await rejection(
      deployToCluster(
        kube,
        request(
          env,
          manifests(configMap('fine'), {
            apiVersion: '/v1',
            kind: 'Namespace',
            metadata: { name: victim.name },
          }),
        ),
      ),
    );

    expect(error.code).toBe('policy_violation');
    expect(error.message).toContain(
      `v1 Namespace ${victim.name}: namespace "${victim.name}" is not allowed for environment ${env.name}`,
    );
    // Neither adopted (labelled, then pruned by a later commit) nor anything else applied.
    expect(
      (await kube.get(NAMESPACES, undefined, victim.name))?.metadata.labels?.['pushgate.dev/environment'],
    ).toBeUndefined();
    expect(await kube.get(CONFIG_MAPS, ns.name, 'fine')).toBeUndefined();
  });

  it('prunes no Namespace outside allow.namespaces, even one its inventory lists (allow narrowed, or listed as "/v1")', async () => {
    const ns = await createTestNamespace('apply-prune-ns-home');
    const extra = await createTestNamespace('apply-prune-ns-extra');
    const odd = await createTestNamespace('apply-prune-ns-odd');
    const wide = environmentFor(ns.name, {
      allow: { namespaces: [ns.name, extra.name], clusterScoped: true },
    });
    const kube = client();
    const first = request(
      wide,
      manifests(configMap('web'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: extra.name } }),
    );
    await deployToCluster(kube, first);
    // What a version that let "/v1" through left: a Namespace it adopted, listed as written.
    await kube.transport.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${odd.name}`,
      contentType: 'application/merge-patch+json',
      body: { metadata: { labels: { 'pushgate.dev/environment': wide.name } } },
    });
    const inventory = (await readInventory(kube, wide))!;
    await writeInventory(kube, wide, {
      ...inventory,
      objects: [...inventory.objects, { apiVersion: '/v1', kind: 'Namespace', name: odd.name }],
    });

    const narrowed = environmentFor(ns.name, {
      name: wide.name,
      allow: { namespaces: [ns.name], clusterScoped: true },
    });
    const outcome = await deployToCluster(
      kube,
      request(narrowed, manifests(configMap('web')), { lastAppliedSha: first.sha }),
    );

    expect(
      outcome.resources
        .filter((r) => r.kind === 'Namespace')
        .map((r) => `${r.name}:${r.action}:${r.message}`)
        .sort(),
    ).toEqual(
      [extra.name, odd.name]
        .map(
          (name) =>
            `${name}:skipped:not pruned: namespace "${name}" is not in allow.namespaces for environment ${wide.name}`,
        )
        .sort(),
    );
    for (const name of [extra.name, odd.name]) {
      const live = await kube.get(NAMESPACES, undefined, name);
      expect(live?.metadata.deletionTimestamp).toBeUndefined();
    }
  });

  it('fails a kind the cluster does not serve with manifest_invalid naming file and document', async () => {
    const ns = await createTestNamespace('apply-unknown');
    const env = environmentFor(ns.name);
    const kube = client();

    const error = await rejection(
      deployToCluster(
        kube,
        request(
          env,
          manifests(configMap('a'), {
            apiVersion: 'nothing.example.com/v1',
            kind: 'Gizmo',
            metadata: { name: 'g' },
          }),
        ),
      ),
    );

    expect(error.code).toBe('manifest_invalid');
    expect(error.permanent).toBe(true);
    expect(error.message).toBe(
      'env/app.yaml document 2: unknown kind Gizmo in nothing.example.com/v1: the cluster does not serve it and no CustomResourceDefinition in this set defines it',
    );
    expect(await kube.get(CONFIG_MAPS, ns.name, 'a')).toBeUndefined();
  });

  it('fails the whole set when the API server rejects one object, naming its file and document', async () => {
    const ns = await createTestNamespace('apply-reject');
    const env = environmentFor(ns.name);
    const kube = client();
    const set = request(env, manifests(configMap('valid'), service('bad', 99999), deployment('web')));

    const error = await rejection(deployToCluster(kube, set));

    expect(error.code).toBe('apply_rejected');
    expect(error.permanent).toBe(true);
    expect(error.message).toMatch(
      /^server-side dry-run rejected the set, nothing was changed: env\/app\.yaml document 2: v1 Service .*\/bad: dry-run rejected \(HTTP 422\): .*99999/,
    );
    expect(error.resources.find((r) => r.name === 'bad')?.action).toBe('failed');
    expect(await kube.get(CONFIG_MAPS, ns.name, 'valid')).toBeUndefined();
    expect(await kube.get(DEPLOYMENTS, ns.name, 'web')).toBeUndefined();
    expect(set.count).toBe(0);
  });

  it("keeps a Secret's value out of the error when the API server quotes it", async () => {
    const ns = await createTestNamespace('apply-secret-quoted');
    const env = environmentFor(ns.name);
    const kube = client();
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'db' },
      // A number where a string belongs: the API server's rejection prints the value it got.
      stringData: { password: 987654321987 },
    };

    const error = await rejection(deployToCluster(kube, request(env, manifests(secret))));

    expect(error.code).toBe('apply_rejected');
    expect(error.message).toMatch(/v1 Secret .*\/db: dry-run rejected \(HTTP \d+\): .*stringData\.password/);
    expect(error.message).toContain('[redacted]');
    expect(JSON.stringify(error.resources)).toContain('[redacted]');
    expect(`${error.message} ${JSON.stringify(error.resources)}`).not.toContain('987654321987');
  });

  it('rejects a misspelt field instead of dropping it', async () => {
    const ns = await createTestNamespace('apply-typo');
    const env = environmentFor(ns.name);
    const kube = client();

    const error = await rejection(
      deployToCluster(
        kube,
        request(
          env,
          manifests({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, dataa: { k: 'v' } }),
        ),
      ),
    );

    expect(error.code).toBe('apply_rejected');
    expect(error.permanent).toBe(true);
    expect(error.message).toMatch(
      /env\/app\.yaml document 1: v1 ConfigMap .*\/c: dry-run rejected \(HTTP \d+\): .*dataa/,
    );
  });

  it('writes nothing once the lock is lost', async () => {
    const ns = await createTestNamespace('apply-lock');
    const env = environmentFor(ns.name);
    const kube = client();
    const lost = request(env, manifests(configMap('a')), {
      assertLockHeld: () => Promise.reject(new PushgateError('transient', 'lock lost')),
    });

    await expect(deployToCluster(kube, lost)).rejects.toThrow('lock lost');

    expect(await kube.get(CONFIG_MAPS, ns.name, 'a')).toBeUndefined();
  });

  it('applies no later kind group once the lock is lost mid-apply', async () => {
    const ns = await createTestNamespace('apply-lock-mid');
    const env = environmentFor(ns.name);
    const kube = client();
    // Another worker took the lock over as soon as the first group (the ConfigMap) landed.
    const lost = request(env, manifests(configMap('a'), service('b', 80), deployment('c')), {
      assertLockHeld: async () => {
        if (await kube.get(CONFIG_MAPS, ns.name, 'a')) throw new PushgateError('transient', 'lock lost');
      },
    });

    await expect(deployToCluster(kube, lost)).rejects.toThrow('lock lost');

    expect(await kube.get(CONFIG_MAPS, ns.name, 'a')).toBeDefined();
    expect(await kube.get(SERVICES, ns.name, 'b')).toBeUndefined();
    expect(await kube.get(DEPLOYMENTS, ns.name, 'c')).toBeUndefined();
  });

  it('writes no more of a kind group once the lock lapses mid-group (a worker frozen past its TTL)', async () => {
    const ns = await createTestNamespace('apply-lock-mid-group');
    const env = environmentFor(ns.name);
    const kube = client();
    const names = Array.from({ length: 40 }, (_, i) => `c${i}`);
    // The renewals stopped while the fifth object was being sent: the process was frozen.
    let checks = 0;
    const frozen = request(env, manifests(...names.map((name) => configMap(name))), {
      assertLockHeldNow: () => {
        checks += 1;
        if (checks > 5) throw new PushgateError('transient', 'lock lost: not renewed for 31000 ms');
      },
    });

    await expect(deployToCluster(kube, frozen)).rejects.toThrow('lock lost');

    const written = await Promise.all(names.map((name) => kube.get(CONFIG_MAPS, ns.name, name)));
    expect(written.filter(Boolean).length).toBe(5);
  });

  it('deletes nothing more once the lock is lost mid-prune', async () => {
    const ns = await createTestNamespace('apply-lock-prune');
    const env = environmentFor(ns.name);
    const kube = client();
    await deployToCluster(
      kube,
      request(env, manifests(configMap('keep'), service('s', 80), deployment('d'))),
    );
    // Prune goes in reverse apply order: the lock is lost once the Deployment is deleted.
    const lost = request(env, manifests(configMap('keep')), {
      assertLockHeld: async () => {
        if (!(await kube.get(DEPLOYMENTS, ns.name, 'd'))) throw new PushgateError('transient', 'lock lost');
      },
    });

    await expect(deployToCluster(kube, lost)).rejects.toThrow('lock lost');

    expect(await kube.get(DEPLOYMENTS, ns.name, 'd')).toBeUndefined();
    expect(await kube.get(SERVICES, ns.name, 's')).toBeDefined();
  });

  it('prunes an object created by a deploy whose apply failed, once the set drops it', async () => {
    const ns = await createTestNamespace('apply-fail-prune');
    const env = environmentFor(ns.name);
    const kube = client();
    // A real quota admits one Deployment: both pass the dry-run, one of them fails at apply.
    await kube.transport.request({
      method: 'POST',
      path: `/api/v1/namespaces/${ns.name}/resourcequotas`,
      body: { metadata: { name: 'one-deployment' }, spec: { hard: { 'count/deployments.apps': '1' } } },
    });
    // No kube-controller-manager: the quota's status is what the quota controller would write.
    await kube.transport.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns.name}/resourcequotas/one-deployment/status`,
      contentType: 'application/merge-patch+json',
      body: {
        status: { hard: { 'count/deployments.apps': '1' }, used: { 'count/deployments.apps': '0' } },
      },
    });

    const error = await rejection(
      deployToCluster(kube, request(env, manifests(configMap('keep'), deployment('a'), deployment('b')))),
    );

    expect(error.message).toMatch(/^apply failed: .*exceeded quota/);
    const created = error.resources.filter((r) => r.action === 'created').map((r) => r.name);
    expect(created).toHaveLength(2);
    const [survivor] = created.filter((name) => name !== 'keep');
    expect(await kube.get(DEPLOYMENTS, ns.name, survivor ?? '')).toBeDefined();

    // The user reverts the commit.
    const outcome = await deployToCluster(kube, request(env, manifests(configMap('keep'))));

    expect(outcome.resources.find((r) => r.name === survivor)?.action).toBe('pruned');
    expect(await kube.get(DEPLOYMENTS, ns.name, survivor ?? '')).toBeUndefined();
    expect((await readInventory(kube, env))?.objects.map((ref) => ref.name)).toEqual(['keep']);
  });

  it('renders the defaulted objects without writing anything', async () => {
    const ns = await createTestNamespace('apply-render');
    const env = environmentFor(ns.name);
    const kube = client();

    const rendered = await renderForCluster(kube, {
      environment: env,
      manifests: manifests(configMap('a'), service('web', 80)),
    });

    expect(
      rendered.map((o) => [o.kind, o.metadata.namespace, o.metadata.labels?.['pushgate.dev/environment']]),
    ).toEqual([
      ['ConfigMap', ns.name, env.name],
      ['Service', ns.name, env.name],
    ]);
    expect(await kube.get(SERVICES, ns.name, 'web')).toBeUndefined();
  });
});

describe('deployToCluster with stage 1 objects', () => {
  it('applies a CRD and a custom resource of it from the same set', async () => {
    const ns = await createTestNamespace('apply-crd');
    const group = `${ns.name}.example.com`;
    const env = environmentFor(ns.name, { allow: { namespaces: [ns.name], clusterScoped: true } });
    const kube = client();
    const set = manifests(
      { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w' }, spec: { size: 3 } },
      widgetCrd(group, { sizeRequired: true }),
    );

    const first = await deployToCluster(kube, request(env, set));

    expect(actions(first.resources)).toEqual([
      `CustomResourceDefinition/widgets.${group}:created`,
      'Widget/w:created',
    ]);
    const widgets: ResourceInfo = {
      group,
      version: 'v1',
      kind: 'Widget',
      plural: 'widgets',
      namespaced: true,
    };
    expect((await kube.get(widgets, ns.name, 'w'))?.spec).toEqual({ size: 3 });

    const second = await deployToCluster(kube, request(env, set));
    expect(actions(second.resources)).toEqual([
      `CustomResourceDefinition/widgets.${group}:unchanged`,
      'Widget/w:unchanged',
    ]);
  });

  it('rejects a custom resource that does not fit its new CRD before any write', async () => {
    const ns = await createTestNamespace('apply-crd-bad');
    const group = `${ns.name}.example.com`;
    const env = environmentFor(ns.name, { allow: { namespaces: [ns.name], clusterScoped: true } });
    const kube = client();
    const set = manifests(configMap('plain'), widgetCrd(group, { sizeRequired: true }), {
      apiVersion: `${group}/v1`,
      kind: 'Widget',
      metadata: { name: 'w' },
      spec: { size: 'big' },
    });

    const error = await rejection(deployToCluster(kube, request(env, set)));

    expect(error.code).toBe('apply_rejected');
    expect(error.permanent).toBe(true);
    expect(error.message).toMatch(/^server-side dry-run rejected the set, nothing was changed:/);
    expect(error.message).toContain(
      `env/app.yaml document 3: ${group}/v1 Widget ${ns.name}/w: rejected before any write: .spec.size: expected integer, got string (by the schema of widgets.${group} in this set)`,
    );
    expect(error.resources.find((r) => r.kind === 'Widget')?.action).toBe('failed');
    expect(await kube.get(CRDS, undefined, `widgets.${group}`)).toBeUndefined();
    expect(await kube.get(CONFIG_MAPS, ns.name, 'plain')).toBeUndefined();
  });

  it("refuses a custom resource another environment manages before it changes the resource's CRD", async () => {
    const ns = await createTestNamespace('apply-crd-owned');
    const group = `${ns.name}.example.com`;
    const platform = environmentFor(ns.name, { allow: { namespaces: [ns.name], clusterScoped: true } });
    const team = environmentFor(ns.name);
    const kube = client();
    const widget = { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1 } };
    const withColor = widgetCrd(group);
    const specSchema = withColor.spec.versions[0]!.schema.openAPIV3Schema.properties.spec as {
      properties: Record<string, unknown>;
    };
    specSchema.properties.color = { type: 'string' };
    // The platform's branch holds the CRD; a team's branch holds a Widget.
    await deployToCluster(kube, request(platform, manifests(widgetCrd(group))));
    await deployToCluster(kube, request(team, manifests(widget)));

    // The platform's next commit changes the CRD and, by mistake, declares the team's Widget.
    const error = await rejection(deployToCluster(kube, request(platform, manifests(withColor, widget))));

    expect(error.message).toMatch(/^server-side dry-run rejected the set, nothing was changed:/);
    expect(error.message).toContain(`not applied: managed by environment ${team.name}`);
    const live = (await kube.get(CRDS, undefined, `widgets.${group}`)) as unknown as typeof withColor;
    expect(JSON.stringify(live.spec.versions[0]!.schema)).not.toContain('color');

    // Or adds a version, and declares the Widget in it: the cluster does not serve it yet.
    const withV2 = widgetCrd(group);
    withV2.spec.versions.push({ ...withV2.spec.versions[0]!, name: 'v2', storage: false });
    const widgetV2 = { ...widget, apiVersion: `${group}/v2` };
    const again = await rejection(deployToCluster(kube, request(platform, manifests(withV2, widgetV2))));

    expect(again.message).toMatch(/^server-side dry-run rejected the set, nothing was changed:/);
    expect(again.message).toContain(`not applied: managed by environment ${team.name}`);
    const versions = ((await kube.get(CRDS, undefined, `widgets.${group}`)) as unknown as typeof withV2).spec
      .versions;
    expect(versions.map((version) => version.name)).toEqual(['v1']);
    await kube.delete(CRDS, undefined, `widgets.${group}`, undefined);
  });

  it('changes a CRD and its custom resources together, and writes neither when one does not fit', async () => {
    const ns = await createTestNamespace('apply-crd-change');
    const group = `${ns.name}.example.com`;
    const env = environmentFor(ns.name, { allow: { namespaces: [ns.name], clusterScoped: true } });
    const kube = client();
    const widget = (spec: Record<string, unknown>) => ({
      apiVersion: `${group}/v1`,
      kind: 'Widget',
      metadata: { name: 'w' },
      spec,
    });
    const withColor = widgetCrd(group, { sizeRequired: true });
    const specSchema = withColor.spec.versions[0]!.schema.openAPIV3Schema.properties.spec as {
      properties: Record<string, unknown>;
    };
    specSchema.properties.color = { type: 'string' };
    await deployToCluster(
      kube,
      request(env, manifests(widgetCrd(group, { sizeRequired: true }), widget({ size: 1 }))),
    );

    const error = await rejection(
      deployToCluster(kube, request(env, manifests(withColor, widget({ size: 'big', color: 'red' })))),
    );
    expect(error.message).toMatch(/^server-side dry-run rejected the set, nothing was changed:/);
    expect(error.message).toContain('.spec.size: expected integer, got string');
    const live = (await kube.get(CRDS, undefined, `widgets.${group}`)) as unknown as typeof withColor;
    expect(Object.keys(live.spec.versions[0]!.schema.openAPIV3Schema.properties.spec)).not.toContain('color');
    expect(JSON.stringify(live.spec.versions[0]!.schema)).not.toContain('color');

    // A field the changed CRD adds is no mistake: the CRD goes first, then the resource using it.
    const outcome = await deployToCluster(
      kube,
      request(env, manifests(withColor, widget({ size: 2, color: 'red' }))),
    );
    expect(actions(outcome.resources)).toEqual([
      `CustomResourceDefinition/widgets.${group}:configured`,
      'Widget/w:configured',
    ]);
  });

  it('dry-runs custom resources before any write when a CRD change leaves their version as it is', async () => {
    const ns = await createTestNamespace('apply-crd-names');
    const group = `${ns.name}.example.com`;
    const env = environmentFor(ns.name, { allow: { namespaces: [ns.name], clusterScoped: true } });
    const kube = client();
    const widget = (name: string) => ({
      apiVersion: `${group}/v1`,
      kind: 'Widget',
      metadata: { name },
      spec: { size: 1 },
    });
    await deployToCluster(
      kube,
      request(env, manifests(widgetCrd(group, { sizeRequired: true }), widget('w'))),
    );
    // A change outside the schema of v1 (a short name): the live CRD checks v1 resources as the new one would.
    const withShortName = widgetCrd(group, { sizeRequired: true });
    (withShortName.spec.names as Record<string, unknown>).shortNames = ['wd'];

    // Fits the schema, but the server refuses the name: only its dry-run can tell.
    const error = await rejection(
      deployToCluster(kube, request(env, manifests(withShortName, widget('w'), widget('W_1')))),
    );

    expect(error.message).toMatch(/^server-side dry-run rejected the set, nothing was changed:/);
    expect(error.message).toContain('Widget');
    const live = (await kube.get(CRDS, undefined, `widgets.${group}`)) as unknown as {
      spec: { names: object };
    };
    expect(live.spec.names).not.toHaveProperty('shortNames');
  });

  it('prunes a CRD applied in stage 1 by a deploy whose later dry-run failed', async () => {
    const ns = await createTestNamespace('apply-crd-orphan');
    const group = `${ns.name}.example.com`;
    const env = environmentFor(ns.name, { allow: { namespaces: [ns.name], clusterScoped: true } });
    const kube = client();
    // Fits the CRD's schema, so it reaches the dry-run after stage 1, where the server refuses its name.
    const bad = { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'W_1' }, spec: { size: 1 } };
    const error = await rejection(
      deployToCluster(
        kube,
        request(env, manifests(configMap('plain'), widgetCrd(group, { sizeRequired: true }), bad)),
      ),
    );
    expect(error.message).toContain('only Namespaces and CRDs were applied');
    expect(await kube.get(CONFIG_MAPS, ns.name, 'plain')).toBeUndefined();
    expect(await kube.get(CRDS, undefined, `widgets.${group}`)).toBeDefined();

    const outcome = await deployToCluster(kube, request(env, manifests(configMap('plain'))));

    expect(actions(outcome.resources)).toEqual([
      'ConfigMap/plain:created',
      'Widget/W_1:pruned',
      `CustomResourceDefinition/widgets.${group}:pruned`,
    ]);
    // The CRD's own finalizer (run by the API server) removes it once its instances are gone.
    await expect
      .poll(() => kube.get(CRDS, undefined, `widgets.${group}`), { timeout: 20_000, interval: 100 })
      .toBeUndefined();
  });

  it('creates a Namespace and the objects in it in one deploy', async () => {
    const home = await createTestNamespace('apply-ns-home');
    const fresh = `${home.name}-new`;
    const env = environmentFor(home.name, {
      allow: { namespaces: [home.name, `${home.name}-*`], clusterScoped: true },
    });
    const kube = client();

    const outcome = await deployToCluster(
      kube,
      request(
        env,
        manifests(configMap('inside', {}, { namespace: fresh }), {
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: { name: fresh },
        }),
      ),
    );

    expect(actions(outcome.resources)).toEqual([`Namespace/${fresh}:created`, 'ConfigMap/inside:created']);
    expect(await kube.get(CONFIG_MAPS, fresh, 'inside')).toBeDefined();
  });

  it('rejects a bad object bound for a new Namespace before creating the Namespace', async () => {
    const home = await createTestNamespace('apply-ns-bad');
    const fresh = `${home.name}-new`;
    const env = environmentFor(home.name, {
      allow: { namespaces: [home.name, `${home.name}-*`], clusterScoped: true },
    });
    const kube = client();
    const objects = manifests(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: fresh } },
      configMap('plain'),
      { ...service('bad', 99999), metadata: { name: 'bad', namespace: fresh } },
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'typo', namespace: fresh },
        dataa: { k: 'v' },
      },
    );
    const set = request(env, objects);

    const error = await rejection(deployToCluster(kube, set));

    expect(error.code).toBe('apply_rejected');
    expect(error.permanent).toBe(true);
    expect(error.message).toMatch(/^server-side dry-run rejected the set, nothing was changed:/);
    const checkedIn = `dry-run rejected (checked in namespace ${home.name} until ${fresh} exists)`;
    expect(error.message).toContain(
      `env/app.yaml document 3: v1 Service ${fresh}/bad: ${checkedIn} (HTTP 422)`,
    );
    expect(error.message).toMatch(/99999/);
    expect(error.message).toContain(`env/app.yaml document 4: v1 ConfigMap ${fresh}/typo: ${checkedIn}`);
    expect(error.message).toMatch(/dataa/);
    expect(actions(error.resources)).toEqual([
      `Namespace/${fresh}:skipped`,
      'ConfigMap/plain:skipped',
      'ConfigMap/typo:failed',
      'Service/bad:failed',
    ]);
    expect(await kube.get(NAMESPACES, undefined, fresh)).toBeUndefined();
    expect(await kube.get(CONFIG_MAPS, home.name, 'plain')).toBeUndefined();
    expect(set.count).toBe(0);

    const rendered = await rejection(renderForCluster(kube, { environment: env, manifests: objects }));
    expect(rendered.message).toContain(checkedIn);
  });

  it('rejects a bad object on the first deploy, which creates the environment namespace, by a check in default', async () => {
    const fresh = uniqueNamespaceName('apply-ns-first');
    const env = environmentFor(fresh, { allow: { namespaces: [fresh], clusterScoped: true } });
    const kube = client();
    const set = request(
      env,
      manifests(
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: fresh } },
        { ...service('bad', 99999), metadata: { name: 'bad', namespace: fresh } },
      ),
    );

    const error = await rejection(deployToCluster(kube, set));

    expect(error.message).toMatch(/^server-side dry-run rejected the set, nothing was changed:/);
    expect(error.message).toContain(
      `dry-run rejected (checked in namespace default until ${fresh} exists) (HTTP 422)`,
    );
    expect(actions(error.resources)).toEqual([`Namespace/${fresh}:skipped`, 'Service/bad:failed']);
    expect(await kube.get(NAMESPACES, undefined, fresh)).toBeUndefined();
    expect(set.count).toBe(0);
  });

  it('checks an object bound for a new Namespace as a creation, though its name is taken in the environment namespace', async () => {
    const home = await createTestNamespace('apply-ns-namesake');
    const fresh = `${home.name}-new`;
    const env = environmentFor(home.name, {
      allow: { namespaces: [home.name, `${home.name}-*`], clusterScoped: true },
    });
    const kube = client();
    // A Deployment's selector is immutable: dry-run over this one, the new one would be refused.
    const namesake = deployment('web');
    namesake.spec.selector.matchLabels.app = 'older';
    namesake.spec.template.metadata.labels.app = 'older';
    await kube.apply(DEPLOYMENTS, { ...namesake, metadata: { name: 'web', namespace: home.name } });

    const progress: string[] = [];
    const outcome = await deployToCluster(
      kube,
      request(
        env,
        manifests(
          { apiVersion: 'v1', kind: 'Namespace', metadata: { name: fresh } },
          { ...deployment('web'), metadata: { name: 'web', namespace: fresh } },
        ),
        { onProgress: (message) => progress.push(message) },
      ),
    );

    expect(actions(outcome.resources)).toEqual([`Namespace/${fresh}:created`, 'Deployment/web:created']);
    expect(progress).toContain(
      `dry-run ok: 1 object, 1 after stage 1 (1 tried first in namespace ${home.name})`,
    );
    expect((await kube.get(DEPLOYMENTS, fresh, 'web'))?.spec).toMatchObject({
      selector: { matchLabels: { app: 'web' } },
    });
    expect((await kube.get(DEPLOYMENTS, home.name, 'web'))?.spec).toMatchObject({
      selector: { matchLabels: { app: 'older' } },
    });
  });

  it('does not hold an admission denial in the environment namespace against an object bound for a new one', async () => {
    const home = await createTestNamespace('apply-ns-admission');
    const fresh = `${home.name}-new`;
    const env = environmentFor(home.name, {
      allow: { namespaces: [home.name, `${home.name}-*`], clusterScoped: true },
    });
    const kube = client();
    const policy = `${home.name}-no-guarded`;
    const guarded = configMap('guarded', { key: 'value' }, { namespace: fresh, labels: { guarded: 'yes' } });
    await kube.transport.request({
      method: 'POST',
      path: '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies',
      body: {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicy',
        metadata: { name: policy },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: {
            resourceRules: [
              {
                apiGroups: [''],
                apiVersions: ['v1'],
                operations: ['CREATE', 'UPDATE'],
                resources: ['configmaps'],
              },
            ],
          },
          // Invalid answers 422, as the API server's own validation does.
          validations: [
            { expression: 'false', message: 'guarded ConfigMaps are refused here', reason: 'Invalid' },
          ],
        },
      },
    });
    await kube.transport.request({
      method: 'POST',
      path: '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings',
      body: {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicyBinding',
        metadata: { name: policy },
        spec: {
          policyName: policy,
          validationActions: ['Deny'],
          matchResources: {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': home.name } },
            objectSelector: { matchLabels: { guarded: 'yes' } },
          },
        },
      },
    });
    try {
      // The API server takes the policy up within a second or so.
      const inHome = { ...guarded, metadata: { ...guarded.metadata, namespace: home.name } };
      await expect
        .poll(
          () =>
            kube.apply(CONFIG_MAPS, inHome, { dryRun: true }).then(
              () => 'admitted',
              (error: unknown) => String(error),
            ),
          { timeout: 20_000, interval: 100 },
        )
        .toMatch(/guarded ConfigMaps are refused here/);

      const outcome = await deployToCluster(
        kube,
        request(env, manifests({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: fresh } }, guarded)),
      );

      expect(actions(outcome.resources)).toEqual([`Namespace/${fresh}:created`, 'ConfigMap/guarded:created']);
    } finally {
      for (const plural of ['validatingadmissionpolicybindings', 'validatingadmissionpolicies'])
        await kube.transport.request({
          method: 'DELETE',
          path: `/apis/admissionregistration.k8s.io/v1/${plural}/${policy}`,
        });
    }
  });
});

async function writeDeploymentStatus(
  kube: ClusterClient,
  namespace: string,
  name: string,
  available: number,
): Promise<void> {
  const live = await kube.get(DEPLOYMENTS, namespace, name);
  await kube.transport.request({
    method: 'PATCH',
    path: `/apis/apps/v1/namespaces/${namespace}/deployments/${name}/status`,
    contentType: 'application/merge-patch+json',
    body: {
      status: {
        observedGeneration: live?.metadata.generation,
        replicas: 2,
        updatedReplicas: 2,
        readyReplicas: available,
        availableReplicas: available,
      },
    },
  });
}

/** A status a controller would write, as a merge patch of the status subresource. */
async function writeStatus(
  kube: ClusterClient,
  resource: ResourceInfo,
  namespace: string,
  name: string,
  status: Record<string, unknown>,
): Promise<void> {
  await kube.transport.request({
    method: 'PATCH',
    path: `/apis/${resource.group}/${resource.version}/namespaces/${namespace}/${resource.plural}/${name}/status`,
    contentType: 'application/merge-patch+json',
    body: { status },
  });
}

function job(name: string, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name },
    spec: {
      ...spec,
      template: {
        spec: { restartPolicy: 'Never', containers: [{ name: 'app', image: 'registry.example/job:1' }] },
      },
    },
  };
}

describe('deployToCluster health', () => {
  it('waits until the Deployment reports its replicas available', async () => {
    const ns = await createTestNamespace('apply-health');
    const env = environmentFor(ns.name, { healthTimeout: '30s' });
    const kube = client();
    const progress: string[] = [];
    const deploy = deployToCluster(
      kube,
      request(env, manifests(deployment('web')), { onProgress: (message) => progress.push(message) }),
    );
    // Play the controller: once the deploy waits, report the rollout done.
    await expect
      .poll(() => progress.some((m) => m.startsWith('waiting up to')), { timeout: 10_000 })
      .toBe(true);
    await writeDeploymentStatus(kube, ns.name, 'web', 2);

    const outcome = await deploy;

    expect(actions(outcome.resources)).toEqual(['Deployment/web:created']);
    expect(progress).toContain('all workloads ready');
  });

  it('fails at once on a failed Job, saying how to run it again, also when a later deploy leaves it as it is', async () => {
    const ns = await createTestNamespace('apply-health-job-failed');
    const env = environmentFor(ns.name, { healthTimeout: '30s' });
    const kube = client();
    const { outcome } = await deployIntoHealthWait(kube, env, manifests(job('migrate')));
    const now = new Date().toISOString();
    const failed = {
      status: 'True',
      reason: 'BackoffLimitExceeded',
      message: 'Job has reached the specified backoff limit',
      lastTransitionTime: now,
    };
    await writeStatus(kube, JOBS, ns.name, 'migrate', {
      startTime: now,
      failed: 1,
      conditions: [
        { type: 'FailureTarget', ...failed },
        { type: 'Failed', ...failed },
      ],
    });
    const hint =
      '(a deploy does not run a failed Job again: delete it and the next deploy creates it anew, or give it a new name in git)';

    const first = await rejection(outcome);

    expect(first.message).toBe(
      `workloads failed:\n  batch/v1 Job ${ns.name}/migrate: failed: Job has reached the specified backoff limit (1 failed pod) ${hint}`,
    );
    const again = await rejection(deployToCluster(kube, request(env, manifests(job('migrate')))));
    expect(again.resources.find((resource) => resource.kind === 'Job')).toMatchObject({
      action: 'unchanged',
      message: `not ready: failed: Job has reached the specified backoff limit (1 failed pod) ${hint}`,
    });
  });

  it("names what keeps a Deployment's pods from being ready when the wait ends (an image that cannot be pulled)", async () => {
    const ns = await createTestNamespace('apply-health-pods');
    const env = environmentFor(ns.name, { healthTimeout: '2s' });
    const kube = client();
    // Play the kubelet: a pod of the Deployment whose image cannot be pulled, and one of another app.
    for (const [name, app] of [
      ['web-7d4b9-x2x8q', 'web'],
      ['other-1', 'other'],
    ] as const) {
      await kube.transport.request({
        method: 'POST',
        path: `/api/v1/namespaces/${ns.name}/pods`,
        body: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name, labels: { app } },
          spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] },
        },
      });
      await kube.transport.request({
        method: 'PATCH',
        path: `/api/v1/namespaces/${ns.name}/pods/${name}/status`,
        contentType: 'application/merge-patch+json',
        body: {
          status: {
            phase: 'Pending',
            conditions: [{ type: 'Ready', status: 'False' }],
            containerStatuses: [
              {
                name: 'app',
                image: 'registry.example/app:1',
                imageID: '',
                ready: false,
                restartCount: 0,
                state: {
                  waiting: {
                    reason: 'ImagePullBackOff',
                    message: `Back-off pulling image "registry.example/app:1" (${app})`,
                  },
                },
              },
            ],
          },
        },
      });
    }

    const error = await rejection(deployToCluster(kube, request(env, manifests(deployment('web')))));

    // No controller here writes the Deployment's status: its pods tell more than its counts.
    const why = `not yet observed by its controller (pod web-7d4b9-x2x8q: app: ImagePullBackOff: Back-off pulling image "registry.example/app:1" (web))`;
    expect(error.message).toBe(`workloads not ready after 2s:\n  apps/v1 Deployment ${ns.name}/web: ${why}`);
    expect(error.resources?.find((resource) => resource.name === 'web')?.message).toBe(`not ready: ${why}`);
  });

  it('waits for custom resources by their conditions (kstatus), naming one that is not Ready', async () => {
    const ns = await createTestNamespace('apply-cr-health');
    const env = environmentFor(ns.name, {
      healthTimeout: '2s',
      allow: { namespaces: [ns.name], clusterScoped: true },
    });
    const kube = client();
    const { group, crd, certificate } = certificates(ns.name);

    const error = await rejection(
      deployToCluster(
        kube,
        request(
          env,
          manifests(crd, certificate('issued', 'True', 'Issued'), certificate('web', 'False', 'Issuing')),
        ),
      ),
    );

    expect(error.code).toBe('health_timeout');
    expect(error.message).toBe(
      `workloads not ready after 2s:\n  ${group}/v1 Certificate ${ns.name}/web: Ready=False: Issuing`,
    );
  });

  it('polls a long wait less often as it goes on: every half second at first, at most every 5 s (as Flux)', async () => {
    const ns = await createTestNamespace('apply-health-backoff');
    const env = environmentFor(ns.name, { healthTimeout: '20s' });
    const kube = client();
    // Eight of a kind in a namespace: the wait lists them, by the environment's label.
    const names = Array.from({ length: 8 }, (_, index) => `web-${index}`);
    const lists: number[] = [];
    const send = kube.transport.request.bind(kube.transport);
    kube.transport.request = (req) => {
      if (req.method === 'GET' && req.path.endsWith('/deployments') && req.query?.labelSelector)
        lists.push(Date.now());
      return send(req);
    };
    const started = Date.now();

    const error = await rejection(
      deployToCluster(kube, request(env, manifests(...names.map((name) => deployment(name))))),
    );

    expect(error.code).toBe('health_timeout');
    // A round every 500 ms would be 40 in 20 s; a tenth of the time waited (5 s at 50 s) makes
    // 10 in the first 5 s and about 14 in the next 15.
    expect(lists.length).toBeGreaterThanOrEqual(15);
    expect(lists.length).toBeLessThanOrEqual(30);
    // Still polled to the end: the last round is within a tenth of the wait of its deadline.
    expect(started + 20_000 - lists.at(-1)!).toBeLessThan(2_500);
  });

  it('ends a long wait within a second of a newer commit, however far apart its rounds are by then', async () => {
    const ns = await createTestNamespace('apply-health-backoff-newer');
    const env = environmentFor(ns.name, { healthTimeout: '60s' });
    const kube = client();
    const reads: number[] = [];
    const send = kube.transport.request.bind(kube.transport);
    kube.transport.request = (req) => {
      if (req.method === 'GET' && req.path.endsWith('/deployments/web')) reads.push(Date.now());
      return send(req);
    };
    const queued: { sha?: string } = {};

    const deploy = deployToCluster(
      kube,
      request(env, manifests(deployment('web')), {
        newerCommit: { ask: () => Promise.resolve(queued.sha), stop: () => undefined },
      }),
    );
    // Between two rounds 2 s apart (some 20 s into the wait), once the wait has asked and slept.
    const betweenLongRounds = (): boolean => {
      const [before, last] = reads.slice(-2);
      return before !== undefined && last !== undefined && last - before >= 2_000 && Date.now() - last >= 300;
    };
    await expect.poll(betweenLongRounds, { timeout: 40_000, interval: 20 }).toBe(true);
    queued.sha = 'b'.repeat(40);
    const queuedAt = Date.now();
    const outcome = await deploy;

    expect(outcome.overtaken?.by).toBe(queued.sha);
    expect(Date.now() - queuedAt).toBeLessThan(1_500);
  });

  it('reads a custom resource found ready again only every few rounds while another is not', async () => {
    const ns = await createTestNamespace('apply-cr-reads');
    const env = environmentFor(ns.name, {
      healthTimeout: '4s',
      allow: { namespaces: [ns.name], clusterScoped: true },
    });
    const kube = client();
    const { crd, certificate } = certificates(ns.name);
    await deployToCluster(kube, request({ ...env, healthTimeout: 0 }, manifests(crd)));
    // Counted where every request of the deploy goes (its job's client shares the transport).
    const reads = new Map<string, number>();
    const send = kube.transport.request.bind(kube.transport);
    kube.transport.request = (req) => {
      const name = req.method === 'GET' ? /\/certificates\/([^/?]+)$/.exec(req.path)?.[1] : undefined;
      if (name) reads.set(name, (reads.get(name) ?? 0) + 1);
      return send(req);
    };

    await rejection(
      deployToCluster(
        kube,
        request(env, manifests(crd, certificate('issued', 'True'), certificate('web', 'False'))),
      ),
    );

    // About 8 rounds in 4 s: the one not ready is read in each, the ready one in the first and
    // every tenth (the deploy's own reads before the wait aside).
    const extra = reads.get('web')! - 8;
    expect(extra).toBeGreaterThanOrEqual(0);
    expect(reads.get('issued')).toBeLessThanOrEqual(extra + 2);
  });

  it('times out naming the Deployment that never became ready', async () => {
    const ns = await createTestNamespace('apply-unhealthy');
    const env = environmentFor(ns.name, { healthTimeout: '2s' });
    const kube = client();
    const deploy = deployToCluster(kube, request(env, manifests(deployment('web'), configMap('c'))));

    const error = await rejection(deploy);

    expect(error.code).toBe('health_timeout');
    expect(error.permanent).toBe(true);
    expect(error.message).toBe(
      `workloads not ready after 2s:\n  apps/v1 Deployment ${ns.name}/web: not yet observed by its controller`,
    );
    expect(error.resources.map((r) => `${r.kind}/${r.name}:${r.action}:${r.message ?? ''}`)).toEqual([
      'ConfigMap/c:created:',
      'Deployment/web:created:not ready: not yet observed by its controller',
    ]);
  });

  it('polls a ready object again each round: a rollout that then exceeds its deadline fails the wait', async () => {
    const ns = await createTestNamespace('apply-health-repoll');
    const env = environmentFor(ns.name, { healthTimeout: '10s' });
    const kube = client();
    const { outcome, progress } = await deployIntoHealthWait(
      kube,
      env,
      manifests(deployment('web'), job('migrate')),
    );
    const deploy = rejection(outcome);
    await writeDeploymentStatus(kube, ns.name, 'web', 2);
    // Judged ready: the wait is on the Job alone (no controller here completes it).
    await expect
      .poll(() => progress.at(-1), { timeout: 10_000 })
      .toMatch(/for 1 workload to be ready: batch\/v1 Job /);

    await writeStatus(kube, DEPLOYMENTS, ns.name, 'web', {
      conditions: [
        {
          type: 'Progressing',
          status: 'False',
          reason: 'ProgressDeadlineExceeded',
          message: 'ReplicaSet "web-1" has timed out progressing.',
        },
      ],
    });
    const error = await deploy;

    expect(error.message).toBe(
      `workloads failed:\n  apps/v1 Deployment ${ns.name}/web: progress deadline exceeded: ReplicaSet "web-1" has timed out progressing.`,
    );
  });

  it.each([
    ['read one by one', 1],
    ['listed', 8],
  ])(
    'fails at once when an object it has seen is deleted during the wait (Deployments %s)',
    async (_, count) => {
      const ns = await createTestNamespace('apply-health-deleted');
      const env = environmentFor(ns.name, { healthTimeout: '10s' });
      const kube = client();
      const names = Array.from({ length: count }, (_, index) => `web-${index}`);
      const { outcome } = await deployIntoHealthWait(
        kube,
        env,
        manifests(...names.map((name) => deployment(name))),
      );
      const deploy = rejection(outcome);

      await kube.delete(DEPLOYMENTS, ns.name, 'web-0', undefined);
      const error = await deploy;

      expect(error.message).toBe(
        `workloads failed:\n  apps/v1 Deployment ${ns.name}/web-0: deleted during the health wait`,
      );
    },
  );

  it('says a Job deleted before it was seen to finish may have gone by its ttlSecondsAfterFinished', async () => {
    const ns = await createTestNamespace('apply-health-ttl-unseen');
    const env = environmentFor(ns.name, { healthTimeout: '10s' });
    const kube = client();
    const { outcome } = await deployIntoHealthWait(
      kube,
      env,
      manifests(job('migrate', { ttlSecondsAfterFinished: 0 })),
    );
    const deploy = rejection(outcome);

    await kube.delete(JOBS, ns.name, 'migrate', undefined);
    const error = await deploy;

    expect(error.message).toBe(
      `workloads failed:\n  batch/v1 Job ${ns.name}/migrate: deleted during the health wait ` +
        '(its ttlSecondsAfterFinished: 0 removes it once finished, before the wait could see how)',
    );
  });

  it('counts a Job seen complete as done when its TTL controller then deletes it', async () => {
    const ns = await createTestNamespace('apply-health-ttl');
    const env = environmentFor(ns.name, { healthTimeout: '30s' });
    const kube = client();
    const { outcome: deploy, progress } = await deployIntoHealthWait(
      kube,
      env,
      manifests(deployment('web'), job('migrate')),
    );
    const now = new Date().toISOString();
    const done = {
      status: 'True',
      reason: 'CompletionsReached',
      lastProbeTime: now,
      lastTransitionTime: now,
    };
    await writeStatus(kube, JOBS, ns.name, 'migrate', {
      startTime: now,
      completionTime: now,
      succeeded: 1,
      conditions: [
        { type: 'SuccessCriteriaMet', ...done },
        { type: 'Complete', ...done },
      ],
    });
    await expect
      .poll(() => progress.at(-1), { timeout: 10_000 })
      .toMatch(/for 1 workload to be ready: apps\/v1 Deployment /);

    await kube.delete(JOBS, ns.name, 'migrate', undefined);
    await writeDeploymentStatus(kube, ns.name, 'web', 2);

    expect(actions((await deploy).resources)).toEqual(['Deployment/web:created', 'Job/migrate:created']);
  });

  it('counts a Job at SuccessCriteriaMet as done before Complete, and when it is then deleted', async () => {
    const ns = await createTestNamespace('apply-health-success-criteria');
    const env = environmentFor(ns.name, { healthTimeout: '30s' });
    const kube = client();
    const { outcome: deploy, progress } = await deployIntoHealthWait(
      kube,
      env,
      manifests(deployment('web'), job('migrate')),
    );
    // What the Job controller (Kubernetes 1.31+) writes once the completions are reached; it
    // adds Complete only after the last pod has terminated.
    const now = new Date().toISOString();
    await writeStatus(kube, JOBS, ns.name, 'migrate', {
      startTime: now,
      succeeded: 1,
      conditions: [
        {
          type: 'SuccessCriteriaMet',
          status: 'True',
          reason: 'CompletionsReached',
          message: 'Reached expected number of succeeded pods',
          lastProbeTime: now,
          lastTransitionTime: now,
        },
      ],
    });
    await expect
      .poll(() => progress.at(-1), { timeout: 10_000 })
      .toMatch(/for 1 workload to be ready: apps\/v1 Deployment /);

    await kube.delete(JOBS, ns.name, 'migrate', undefined);
    await writeDeploymentStatus(kube, ns.name, 'web', 2);

    expect(actions((await deploy).resources)).toEqual(['Deployment/web:created', 'Job/migrate:created']);
  });

  it('reports a Deployment with too few available replicas', async () => {
    const ns = await createTestNamespace('apply-partial');
    const env = environmentFor(ns.name, { healthTimeout: '1s' });
    const kube = client();
    await deployToCluster(kube, request({ ...env, healthTimeout: 0 }, manifests(deployment('web'))));
    await writeDeploymentStatus(kube, ns.name, 'web', 1);

    const error = await rejection(deployToCluster(kube, request(env, manifests(deployment('web')))));

    expect(error.message).toContain(`apps/v1 Deployment ${ns.name}/web: 1/2 replicas available`);
    expect(error.resources[0]?.action).toBe('unchanged');
  });
});

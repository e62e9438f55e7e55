import { describe, expect, it } from 'vitest';
import { PushgateError } from '../../../src/lib/errors.js';
import { matchGlob } from '../../../src/manifests/glob.js';
import { applyStage, compareApplyOrder, groupByRank, kindRank } from '../../../src/manifests/order.js';
import { checkPolicy } from '../../../src/manifests/policy.js';
import { prepareManifests, type PreparedObject } from '../../../src/manifests/prepare.js';
import type { ResolveResource } from '../../../src/manifests/resource-info.js';
import type { LoadedManifest } from '../../../src/manifests/types.js';

describe('matchGlob', () => {
  it.each([
    ['apps', 'apps', true],
    ['apps', 'apps-x', false],
    ['apps-*', 'apps-', true],
    ['apps-*', 'apps-blue', true],
    ['apps-*', 'app', false],
    ['*', 'anything', true],
    ['a?c', 'abc', true],
    ['a?c', 'ac', false],
    ['*-prod', 'team-a-prod', true],
    ['*-prod', 'team-a-production', false],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['team.[a]', 'team.[a]', true],
  ])('%s matches %s: %s', (pattern, value, expected) => {
    expect(matchGlob(pattern, value)).toBe(expected);
  });
});

describe('apply order', () => {
  it('puts what others depend on first and webhooks last', () => {
    const kinds = [
      'ValidatingWebhookConfiguration',
      'Widget',
      'Deployment',
      'Service',
      'ConfigMap',
      'Namespace',
      'ClusterRole',
    ];
    const sorted = kinds
      .map((kind) => ({ apiVersion: 'v1', kind, name: 'x' }))
      .sort(compareApplyOrder)
      .map((o) => o.kind);
    expect(sorted).toEqual([
      'Namespace',
      'ConfigMap',
      'ClusterRole',
      'Service',
      'Deployment',
      'Widget',
      'ValidatingWebhookConfiguration',
    ]);
  });

  it('ranks unknown kinds after every built-in kind', () => {
    expect(kindRank('Widget')).toBeGreaterThan(kindRank('APIService'));
    expect(kindRank('MutatingWebhookConfiguration')).toBeGreaterThan(kindRank('Widget'));
  });

  it('places Namespaces and CRDs in stage 1', () => {
    expect(applyStage('v1', 'Namespace')).toBe(1);
    expect(applyStage('apiextensions.k8s.io/v1', 'CustomResourceDefinition')).toBe(1);
    expect(applyStage('v1', 'ConfigMap')).toBe(2);
    expect(applyStage('example.com/v1', 'Namespace')).toBe(2);
  });

  it('groups consecutive objects of the same rank so each group can go in parallel', () => {
    const objects = ['ConfigMap', 'ConfigMap', 'Service', 'Deployment', 'Deployment'].map((kind, i) => ({
      apiVersion: 'v1',
      kind,
      name: `n${i}`,
    }));
    expect(groupByRank(objects).map((group) => group.length)).toEqual([2, 1, 2]);
  });
});

const builtins: Record<string, { plural: string; namespaced: boolean }> = {
  'v1|ConfigMap': { plural: 'configmaps', namespaced: true },
  'v1|Namespace': { plural: 'namespaces', namespaced: false },
  'apps/v1|Deployment': { plural: 'deployments', namespaced: true },
  'rbac.authorization.k8s.io/v1|ClusterRole': { plural: 'clusterroles', namespaced: false },
  'apiextensions.k8s.io/v1|CustomResourceDefinition': {
    plural: 'customresourcedefinitions',
    namespaced: false,
  },
};

const resolve: ResolveResource = (apiVersion, kind) => {
  const found = builtins[`${apiVersion}|${kind}`];
  if (!found) return Promise.resolve(undefined);
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  return Promise.resolve({ group: group ?? '', version: version ?? '', kind, ...found });
};

function manifest(object: Record<string, unknown>, document: number, file = 'env/a.yaml'): LoadedManifest {
  return { object: object as LoadedManifest['object'], source: { file, document } };
}

const environment = {
  name: 'staging',
  namespace: 'apps',
  allow: { namespaces: ['apps', 'apps-*'], clusterScoped: false },
};

async function rejection(promise: Promise<unknown>): Promise<PushgateError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PushgateError);
  return error as PushgateError;
}

describe('prepareManifests', () => {
  it('defaults the namespace, labels every object and drops a namespace on a cluster-scoped one', async () => {
    const prepared = await prepareManifests(
      [
        manifest({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', labels: { app: 'x' } } }, 1),
        manifest(
          { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps-new', namespace: 'ignored' } },
          2,
        ),
      ],
      environment,
      resolve,
    );

    expect(prepared.map((p) => p.ref)).toEqual([
      { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'apps', name: 'c' },
      { apiVersion: 'v1', kind: 'Namespace', name: 'apps-new' },
    ]);
    expect(prepared[0]?.object.metadata.labels).toEqual({ app: 'x', 'pushgate.dev/environment': 'staging' });
    expect(prepared[1]?.object.metadata.namespace).toBeUndefined();
  });

  it('drops what the API server wrote into a manifest saved with kubectl get -o yaml', async () => {
    const saved = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'c',
        annotations: { team: 'web' },
        resourceVersion: '4711',
        uid: '0b7c9f0e-1111-2222-3333-444455556666',
        creationTimestamp: '2026-01-01T00:00:00Z',
        generation: 3,
        selfLink: '/api/v1/namespaces/apps/configmaps/c',
        managedFields: [{ manager: 'kubectl', operation: 'Update' }],
      },
      data: { a: '1' },
    };
    const [prepared] = await prepareManifests([manifest(saved, 1)], environment, resolve);

    expect(prepared?.object).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'c',
        namespace: 'apps',
        annotations: { team: 'web' },
        labels: { 'pushgate.dev/environment': 'staging' },
      },
      data: { a: '1' },
    });
  });

  it('knows kinds defined by a CRD in the same set', async () => {
    const prepared = await prepareManifests(
      [
        manifest(
          {
            apiVersion: 'apiextensions.k8s.io/v1',
            kind: 'CustomResourceDefinition',
            metadata: { name: 'widgets.example.com' },
            spec: {
              group: 'example.com',
              scope: 'Namespaced',
              names: { kind: 'Widget', plural: 'widgets' },
              versions: [{ name: 'v1', served: true, storage: true }],
            },
          },
          1,
        ),
        manifest({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }, 2),
      ],
      environment,
      resolve,
    );

    expect(prepared[1]).toMatchObject({
      kindFromSet: true,
      stage: 2,
      ref: { namespace: 'apps' },
      resource: { plural: 'widgets', group: 'example.com' },
    });
  });

  it('keeps the cluster scope of a served kind that a CRD in the set claims as namespaced', async () => {
    const crd = (name: string, group: string, kind: string, plural: string) =>
      manifest(
        {
          apiVersion: 'apiextensions.k8s.io/v1',
          kind: 'CustomResourceDefinition',
          metadata: { name },
          spec: {
            group,
            scope: 'Namespaced',
            names: { kind, plural },
            versions: [{ name: 'v1', served: true }],
          },
        },
        1,
      );
    const prepared = await prepareManifests(
      [
        crd(
          'customresourcedefinitions.apiextensions.k8s.io',
          'apiextensions.k8s.io',
          'CustomResourceDefinition',
          'customresourcedefinitions',
        ),
        crd('widgets.example.com', 'example.com', 'Widget', 'widgets'),
      ],
      environment,
      resolve,
    );

    expect(prepared.map((p) => [p.resource.namespaced, p.ref.namespace])).toEqual([
      [false, undefined],
      [false, undefined],
    ]);
    expect(() => checkPolicy(prepared, environment)).toThrow(/cluster-scoped/);
  });

  it('rejects unknown kinds and duplicates (after namespace defaulting) with file and document', async () => {
    const error = await rejection(
      prepareManifests(
        [
          manifest({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } }, 1),
          manifest({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'apps' } }, 2),
          manifest(
            { apiVersion: 'example.com/v1', kind: 'Gadget', metadata: { name: 'g' } },
            1,
            'env/b.yaml',
          ),
        ],
        environment,
        resolve,
      ),
    );

    expect(error.code).toBe('manifest_invalid');
    expect(error.message).toBe(
      '2 manifest errors:\n' +
        '  env/a.yaml document 2: duplicate object v1 ConfigMap apps/c, first defined in env/a.yaml document 1\n' +
        '  env/b.yaml document 1: unknown kind Gadget in example.com/v1: the cluster does not serve it and no CustomResourceDefinition in this set defines it',
    );
  });
});

describe('checkPolicy', () => {
  async function prepare(objects: Record<string, unknown>[]): Promise<PreparedObject[]> {
    return prepareManifests(
      objects.map((o, i) => manifest(o, i + 1)),
      environment,
      resolve,
    );
  }

  it('accepts namespaces matching the globs', async () => {
    const objects = await prepare([
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a' } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b', namespace: 'apps-blue' } },
    ]);
    expect(() => checkPolicy(objects, environment)).not.toThrow();
  });

  it('lists every object in a forbidden namespace and every cluster-scoped object', async () => {
    const objects = await prepare([
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'kube-system' } },
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'other' } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps-new' } },
    ]);

    let thrown: unknown;
    try {
      checkPolicy(objects, environment);
    } catch (error) {
      thrown = error;
    }

    expect(thrown).toBeInstanceOf(PushgateError);
    const error = thrown as PushgateError;
    expect(error.code).toBe('policy_violation');
    expect(error.permanent).toBe(true);
    expect(error.message.split('\n')).toEqual([
      '3 policy violations:',
      '  env/a.yaml document 1: v1 ConfigMap kube-system/a: namespace "kube-system" is not allowed for environment staging (allow.namespaces: apps, apps-*)',
      '  env/a.yaml document 2: apps/v1 Deployment other/web: namespace "other" is not allowed for environment staging (allow.namespaces: apps, apps-*)',
      '  env/a.yaml document 3: v1 Namespace apps-new is cluster-scoped, and environment staging does not allow cluster-scoped objects (allow.clusterScoped is false)',
    ]);
  });

  it('allows cluster-scoped objects when clusterScoped is true', async () => {
    const objects = await prepare([
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'r' } },
    ]);
    expect(() =>
      checkPolicy(objects, { ...environment, allow: { namespaces: [], clusterScoped: true } }),
    ).not.toThrow();
  });

  it('holds Namespace objects to allow.namespaces too, so an environment cannot adopt (and later prune) a namespace outside it', async () => {
    const objects = await prepare([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps-new' } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'victim' } },
    ]);
    const allow = { namespaces: ['apps', 'apps-*'], clusterScoped: true };
    expect(() => checkPolicy(objects, { ...environment, allow })).toThrow(
      /^env\/a\.yaml document 2: v1 Namespace victim: namespace "victim" is not allowed for environment staging \(allow\.namespaces: apps, apps-\*\)$/,
    );
  });
});

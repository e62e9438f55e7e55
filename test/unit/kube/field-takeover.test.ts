import { describe, expect, it } from 'vitest';
import type { LiveObject } from '../../../src/kube/cluster.js';
import { takeOverHandManagedFields, type ManagedFieldsEntry } from '../../../src/kube/field-takeover.js';

const NOW = new Date('2026-12-03T10:00:00.123Z');

function live(managedFields: ManagedFieldsEntry[]): LiveObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'apps', managedFields },
  };
}

function entry(
  manager: string,
  fieldsV1: ManagedFieldsEntry['fieldsV1'],
  extra: Partial<ManagedFieldsEntry> = {},
) {
  return { manager, operation: 'Update', apiVersion: 'apps/v1', fieldsType: 'FieldsV1', fieldsV1, ...extra };
}

describe('takeOverHandManagedFields', () => {
  it("merges kubectl's fields into pushgate's apply entry and leaves a controller's alone", () => {
    const result = takeOverHandManagedFields(
      live([
        entry('pushgate', { 'f:spec': { 'f:template': {} } }, { operation: 'Apply' }),
        entry('kubectl-edit', {
          'f:metadata': { 'f:labels': { 'f:team': {} } },
          'f:spec': { 'f:paused': {} },
        }),
        entry('kube-controller-manager', { 'f:status': { 'f:replicas': {} } }, { subresource: 'status' }),
      ]),
      'apps/v1',
      NOW,
    );

    expect(result).toEqual([
      entry(
        'pushgate',
        { 'f:spec': { 'f:template': {}, 'f:paused': {} }, 'f:metadata': { 'f:labels': { 'f:team': {} } } },
        { operation: 'Apply' },
      ),
      entry('kube-controller-manager', { 'f:status': { 'f:replicas': {} } }, { subresource: 'status' }),
    ]);
  });

  it('keeps a replica count with whoever set it, and takes over nothing else when that is all there is', () => {
    const scaled = entry('kubectl-edit', { 'f:spec': { 'f:replicas': {}, 'f:paused': {} } });

    const result = takeOverHandManagedFields(live([scaled]), 'apps/v1', NOW);

    expect(result).toEqual([
      entry('kubectl-edit', { 'f:spec': { 'f:replicas': {} } }),
      entry(
        'pushgate',
        { 'f:spec': { 'f:paused': {} } },
        { operation: 'Apply', time: '2026-12-03T10:00:00Z' },
      ),
    ]);
    expect(
      takeOverHandManagedFields(live([entry('kubectl-edit', { 'f:spec': { 'f:replicas': {} } })]), 'apps/v1'),
    ).toBe(undefined);
  });

  it("leaves a prune marker set with kubectl annotate (pushgate's, Flux's, Argo CD's) with kubectl: prune reads it", () => {
    const annotated = entry('kubectl-annotate', {
      'f:metadata': {
        'f:annotations': {
          'f:pushgate.dev/prune': {},
          'f:kustomize.toolkit.fluxcd.io/prune': {},
          'f:argocd.argoproj.io/sync-options': {},
          'f:team': {},
        },
      },
    });

    const result = takeOverHandManagedFields(live([annotated]), 'apps/v1', NOW);

    expect(result).toEqual([
      entry('kubectl-annotate', {
        'f:metadata': {
          'f:annotations': {
            'f:pushgate.dev/prune': {},
            'f:kustomize.toolkit.fluxcd.io/prune': {},
            'f:argocd.argoproj.io/sync-options': {},
          },
        },
      }),
      entry(
        'pushgate',
        { 'f:metadata': { 'f:annotations': { 'f:team': {} } } },
        { operation: 'Apply', time: '2026-12-03T10:00:00Z' },
      ),
    ]);
  });

  it('never takes finalizers, nor what the API server gave before-first-apply (controllers’ fields among them)', () => {
    expect(
      takeOverHandManagedFields(
        live([
          entry('before-first-apply', {
            'f:spec': { 'f:volumeName': {} },
            'f:metadata': { 'f:finalizers': {} },
          }),
          entry('kubectl-edit', { 'f:metadata': { 'f:finalizers': { 'v:"example.com/backup"': {} } } }),
        ]),
        'apps/v1',
      ),
    ).toBeUndefined();
  });

  it('leaves kubectl scale and rollout, other API versions and unknown managers alone', () => {
    expect(
      takeOverHandManagedFields(
        live([
          entry('kubectl-scale', { 'f:spec': { 'f:replicas': {} } }),
          entry('kubectl-rollout', { 'f:spec': { 'f:template': { 'f:metadata': {} } } }),
          entry('kubectl-edit', { 'f:spec': { 'f:paused': {} } }, { apiVersion: 'apps/v1beta2' }),
          entry('helm', { 'f:spec': { 'f:paused': {} } }),
          // A GitOps tool may still apply the object beside pushgate (a shared Namespace): its fields are its own.
          entry('kustomize-controller', { 'f:spec': { 'f:paused': {} } }, { operation: 'Apply' }),
          entry('argocd-controller', { 'f:spec': { 'f:paused': {} } }, { operation: 'Apply' }),
        ]),
        'apps/v1',
      ),
    ).toBeUndefined();
  });
});

describe('takeOverHandManagedFields on a Secret pushgate applied as stringData', () => {
  function secret(managedFields: ManagedFieldsEntry[], apiVersion = 'v1', kind = 'Secret'): LiveObject {
    return { apiVersion, kind, metadata: { name: 'creds', namespace: 'apps', managedFields } };
  }
  const own = (fieldsV1: ManagedFieldsEntry['fieldsV1']) =>
    entry('pushgate', fieldsV1, { operation: 'Apply', apiVersion: 'v1' });

  it("moves pushgate's stringData keys to the data keys they became, beside data keys it owns already", () => {
    const result = takeOverHandManagedFields(
      secret([
        own({
          'f:data': { 'f:ca.crt': {} },
          'f:stringData': { 'f:user': {}, 'f:password': {} },
          'f:type': {},
        }),
      ]),
      'v1',
      NOW,
    );

    expect(result).toEqual([
      own({ 'f:data': { 'f:ca.crt': {}, 'f:user': {}, 'f:password': {} }, 'f:type': {} }),
    ]);
  });

  it('moves stringData taken from kubectl server-side apply too', () => {
    const result = takeOverHandManagedFields(
      secret([
        own({ 'f:data': { 'f:a': {} } }),
        entry('kubectl', { 'f:stringData': { 'f:b': {} } }, { operation: 'Apply', apiVersion: 'v1' }),
      ]),
      'v1',
      NOW,
    );

    expect(result).toEqual([own({ 'f:data': { 'f:a': {}, 'f:b': {} } })]);
  });

  it('leaves alone an entry that owns data only, another kind with a stringData field, and another manager', () => {
    expect(takeOverHandManagedFields(secret([own({ 'f:data': { 'f:a': {} } })]), 'v1')).toBeUndefined();
    const custom = secret(
      [
        entry(
          'pushgate',
          { 'f:stringData': { 'f:a': {} } },
          { operation: 'Apply', apiVersion: 'example.com/v1' },
        ),
      ],
      'example.com/v1',
      'Vault',
    );
    expect(takeOverHandManagedFields(custom, 'example.com/v1')).toBeUndefined();
    const other = entry('helm', { 'f:stringData': { 'f:a': {} } }, { operation: 'Apply', apiVersion: 'v1' });
    expect(takeOverHandManagedFields(secret([other]), 'v1')).toBeUndefined();
  });
});

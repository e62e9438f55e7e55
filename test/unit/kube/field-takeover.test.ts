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
        ]),
        'apps/v1',
      ),
    ).toBeUndefined();
  });
});

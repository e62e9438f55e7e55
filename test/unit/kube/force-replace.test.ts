import { describe, expect, it } from 'vitest';
import { forceEnabled } from '../../../src/kube/force-replace.js';

describe('forceEnabled', () => {
  const annotated = (apiVersion: string, kind: string) => ({
    apiVersion,
    kind,
    metadata: { name: 'x', annotations: { 'pushgate.dev/force': 'enabled' } },
  });

  it('follows the annotation, except on a CRD or a Namespace, whose deletion takes what is of or in it', () => {
    expect(forceEnabled(annotated('batch/v1', 'Job'))).toBe(true);
    expect(forceEnabled({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'x' } })).toBe(false);
    expect(forceEnabled(annotated('apiextensions.k8s.io/v1', 'CustomResourceDefinition'))).toBe(false);
    expect(forceEnabled(annotated('v1', 'Namespace'))).toBe(false);
  });
});

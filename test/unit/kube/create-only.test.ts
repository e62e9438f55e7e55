import { describe, expect, it } from 'vitest';
import { createOnly } from '../../../src/kube/create-only.js';

const object = (annotations?: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'api-key', ...(annotations ? { annotations } : {}) },
});

describe('createOnly', () => {
  it("reads IfNotPresent from pushgate's annotation or Flux's, in any case", () => {
    expect(createOnly(object({ 'pushgate.dev/ssa': 'IfNotPresent' }))).toMatch(
      /^exists; annotated pushgate\.dev\/ssa: IfNotPresent, /,
    );
    expect(createOnly(object({ 'kustomize.toolkit.fluxcd.io/ssa': 'ifnotpresent' }))).toMatch(
      /^exists; annotated kustomize\.toolkit\.fluxcd\.io\/ssa: ifnotpresent, /,
    );
  });

  it('applies everything else: no annotation, and values it does not know (Merge, Ignore)', () => {
    expect(createOnly(object())).toBeUndefined();
    expect(createOnly(object({ 'kustomize.toolkit.fluxcd.io/ssa': 'Merge' }))).toBeUndefined();
    expect(createOnly(object({ 'pushgate.dev/ssa': 'Ignore' }))).toBeUndefined();
  });
});

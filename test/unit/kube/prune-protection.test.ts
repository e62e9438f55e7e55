import { describe, expect, it } from 'vitest';
import { pruneProtection } from '../../../src/kube/prune-protection.js';

describe('pruneProtection', () => {
  it("reads pushgate's own annotation, and Flux's and Argo CD's, so what a migrating team protected stays", () => {
    expect(pruneProtection({ 'pushgate.dev/prune': 'disabled' })).toBe(
      'annotated pushgate.dev/prune: disabled',
    );
    expect(pruneProtection({ 'kustomize.toolkit.fluxcd.io/prune': 'disabled' })).toBe(
      'annotated kustomize.toolkit.fluxcd.io/prune: disabled',
    );
    expect(pruneProtection({ 'argocd.argoproj.io/sync-options': 'Prune=false' })).toBe(
      'annotated argocd.argoproj.io/sync-options: Prune=false',
    );
  });

  it("finds Argo CD's option among others, and takes Prune=confirm as keep: there is no one to confirm", () => {
    expect(pruneProtection({ 'argocd.argoproj.io/sync-options': 'ServerSideApply=true, Prune=false' })).toBe(
      'annotated argocd.argoproj.io/sync-options: Prune=false',
    );
    expect(pruneProtection({ 'argocd.argoproj.io/sync-options': 'Prune=confirm,Delete=false' })).toBe(
      'annotated argocd.argoproj.io/sync-options: Prune=confirm',
    );
  });

  it('errs towards keeping on case, and prunes what no marker keeps', () => {
    expect(pruneProtection({ 'pushgate.dev/prune': 'Disabled' })).toBe(
      'annotated pushgate.dev/prune: Disabled',
    );
    expect(pruneProtection({ 'argocd.argoproj.io/sync-options': 'prune=False' })).toBe(
      'annotated argocd.argoproj.io/sync-options: prune=False',
    );
    expect(pruneProtection(undefined)).toBeUndefined();
    expect(pruneProtection({ 'pushgate.dev/prune': 'enabled' })).toBeUndefined();
    expect(pruneProtection({ 'kustomize.toolkit.fluxcd.io/prune': 'enabled' })).toBeUndefined();
    // Delete=false is about deleting the Application, which pushgate has no counterpart of.
    expect(pruneProtection({ 'argocd.argoproj.io/sync-options': 'Delete=false,Prune=true' })).toBeUndefined();
    expect(pruneProtection({ 'argocd.argoproj.io/sync-options': 'PruneLast=false' })).toBeUndefined();
    expect(pruneProtection({ 'example.com/prune': 'disabled' })).toBeUndefined();
  });
});

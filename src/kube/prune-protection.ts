import { PRUNE_ANNOTATION } from '../manifests/prepare.js';

/** Flux's kustomize-controller keeps an object annotated with it `disabled` out of its garbage collection. */
export const FLUX_PRUNE_ANNOTATION = 'kustomize.toolkit.fluxcd.io/prune';
/** Argo CD's per-object sync options, comma-separated: `Prune=false` keeps it, `Prune=confirm` waits for a person. */
export const ARGO_SYNC_OPTIONS_ANNOTATION = 'argocd.argoproj.io/sync-options';

/** Every annotation prune reads: taken over from kubectl, they would be dropped by the next re-sync. */
export const PRUNE_PROTECTION_ANNOTATIONS: readonly string[] = [
  PRUNE_ANNOTATION,
  FLUX_PRUNE_ANNOTATION,
  ARGO_SYNC_OPTIONS_ANNOTATION,
];

/**
 * Why prune must keep an object, read from its annotations, or undefined when nothing does.
 * Flux's and Argo CD's own markers count as pushgate's: a team moving over keeps what it
 * protected there (a PVC, a Namespace) without re-annotating it first. Argo CD's `Prune=confirm`
 * counts too, as pushgate has no one to ask. Values are read case-insensitively: a marker
 * misspelt in case errs towards keeping.
 */
export function pruneProtection(
  annotations: Readonly<Record<string, string>> | undefined,
): string | undefined {
  if (!annotations) return undefined;
  for (const name of [PRUNE_ANNOTATION, FLUX_PRUNE_ANNOTATION]) {
    const value = annotations[name];
    if (value !== undefined && value.trim().toLowerCase() === 'disabled')
      return `annotated ${name}: ${value}`;
  }
  const options = annotations[ARGO_SYNC_OPTIONS_ANNOTATION];
  if (options === undefined) return undefined;
  for (const option of options.split(',')) {
    const [key, value] = option.split('=', 2).map((part) => part.trim().toLowerCase());
    if (key === 'prune' && (value === 'false' || value === 'confirm'))
      return `annotated ${ARGO_SYNC_OPTIONS_ANNOTATION}: ${option.trim()}`;
  }
  return undefined;
}

import type { ManifestObject } from '../manifests/types.js';

/** `IfNotPresent`: create the object when it is absent, and otherwise leave it as it is. */
export const SSA_ANNOTATION = 'pushgate.dev/ssa';
/** Flux's kustomize-controller reads the same value from this one. */
export const FLUX_SSA_ANNOTATION = 'kustomize.toolkit.fluxcd.io/ssa';

/**
 * Why an object that exists is left as it is, or undefined when a deploy applies it: annotated
 * `IfNotPresent` (pushgate's annotation, or Flux's, so a team moving over keeps it), git gives
 * its first version only: a Secret whose value is then set in the cluster, an object a
 * person or an operator takes over once created.
 */
export function createOnly(object: ManifestObject): string | undefined {
  for (const name of [SSA_ANNOTATION, FLUX_SSA_ANNOTATION]) {
    const value = object.metadata.annotations?.[name];
    if (value !== undefined && value.trim().toLowerCase() === 'ifnotpresent')
      return `exists; annotated ${name}: ${value}, so it is created when absent and otherwise left as it is`;
  }
  return undefined;
}

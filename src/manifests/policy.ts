import type { EnvironmentConfig } from '../config/schema.js';
import type { PushgateError } from '../lib/errors.js';
import { matchAnyGlob } from './glob.js';
import type { PreparedObject } from './prepare.js';
import type { ObjectRef } from './types.js';
import { problemsError, type ManifestProblem } from './problems.js';
import { describeRef } from './resource-info.js';

/**
 * Where an environment may write. Cluster-scoped objects (Namespaces included, as in an
 * Argo CD AppProject) need `allow.clusterScoped: true`: creating a Namespace is a
 * cluster-level act. A Namespace's own name must also match `allow.namespaces`: an
 * environment that may create its namespace must not adopt (and later prune, with all it
 * holds) one outside its bounds. Throws one `policy_violation` listing every object.
 */
export function checkPolicy(
  objects: readonly PreparedObject[],
  environment: Pick<EnvironmentConfig, 'name' | 'allow'>,
): void {
  const violations = policyViolations(objects, environment);
  if (violations.size > 0) throw policyError(violations);
}

/** One `policy_violation` listing every object with its source. */
export function policyError(violations: ReadonlyMap<PreparedObject, string>): PushgateError {
  return problemsError(
    'policy_violation',
    [...violations].map(([{ source }, message]): ManifestProblem => ({ source, message })),
  );
}

/** Each object the environment may not write, with why; empty when all may be written. */
export function policyViolations(
  objects: readonly PreparedObject[],
  environment: Pick<EnvironmentConfig, 'name' | 'allow'>,
): Map<PreparedObject, string> {
  const violations = new Map<PreparedObject, string>();
  const { namespaces, clusterScoped } = environment.allow;
  for (const object of objects) {
    const { ref } = object;
    if (ref.namespace === undefined) {
      if (!clusterScoped) {
        violations.set(
          object,
          `${describeRef(ref)} is cluster-scoped, and environment ${environment.name} does not allow cluster-scoped objects (allow.clusterScoped is false)`,
        );
      } else if (isNamespaceRef(ref) && !matchAnyGlob(namespaces, ref.name)) {
        violations.set(
          object,
          `${describeRef(ref)}: namespace "${ref.name}" is not allowed for environment ${environment.name} (allow.namespaces: ${namespaces.join(', ')})`,
        );
      }
      continue;
    }
    if (!matchAnyGlob(namespaces, ref.namespace)) {
      violations.set(
        object,
        `${describeRef(ref)}: namespace "${ref.namespace}" is not allowed for environment ${environment.name} (allow.namespaces: ${namespaces.join(', ')})`,
      );
    }
  }
  return violations;
}

export function isNamespaceRef(ref: ObjectRef): boolean {
  return ref.kind === 'Namespace' && ref.apiVersion === 'v1';
}

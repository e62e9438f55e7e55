import type { EnvironmentConfig } from '../config/schema.js';
import { matchAnyGlob } from './glob.js';
import type { PreparedObject } from './prepare.js';
import { problemsError, type ManifestProblem } from './problems.js';
import { describeRef } from './resource-info.js';

/**
 * Where an environment may write. Cluster-scoped objects (Namespaces included, as in an
 * Argo CD AppProject) need `allow.clusterScoped: true`: a Namespace is not "in" a namespace,
 * and creating one is a cluster-level act. Throws one `policy_violation` listing every object.
 */
export function checkPolicy(
  objects: readonly PreparedObject[],
  environment: Pick<EnvironmentConfig, 'name' | 'allow'>,
): void {
  const problems: ManifestProblem[] = [];
  const { namespaces, clusterScoped } = environment.allow;
  for (const { ref, source } of objects) {
    if (ref.namespace === undefined) {
      if (!clusterScoped) {
        problems.push({
          source,
          message: `${describeRef(ref)} is cluster-scoped, and environment ${environment.name} does not allow cluster-scoped objects (allow.clusterScoped is false)`,
        });
      }
      continue;
    }
    if (!matchAnyGlob(namespaces, ref.namespace)) {
      problems.push({
        source,
        message: `${describeRef(ref)}: namespace "${ref.namespace}" is not allowed for environment ${environment.name} (allow.namespaces: ${namespaces.join(', ')})`,
      });
    }
  }
  if (problems.length > 0) throw problemsError('policy_violation', problems);
}

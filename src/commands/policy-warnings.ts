import type { Config } from '../config/schema.js';
import { matchAnyGlob } from '../manifests/glob.js';

/** Namespace names are lowercase DNS labels; `*` and `?` are the only wildcards. */
const POSSIBLE_PATTERN = /^[a-z0-9*?-]+$/;

/**
 * `allow.namespaces` that refuse what the environment is sure to deploy: each otherwise shows
 * only as a failed deploy (`namespace "apps" is not allowed…`), for every commit.
 */
export function namespacePolicyWarnings(config: Config): string[] {
  const warnings: string[] = [];
  config.environments.forEach((environment, index) => {
    const field = `environments[${index}].allow.namespaces`;
    const { namespaces } = environment.allow;
    if (namespaces.length === 0) {
      warnings.push(`${field} is empty: environment ${environment.name} may deploy no namespaced object`);
      return;
    }
    const impossible = namespaces.filter((pattern) => !POSSIBLE_PATTERN.test(pattern));
    if (impossible.length > 0)
      warnings.push(
        `${field}: ${impossible.map((pattern) => JSON.stringify(pattern)).join(', ')} can match no namespace ` +
          '(names are lowercase letters, digits and "-"; * and ? are the only wildcards)',
      );
    if (!matchAnyGlob(namespaces, environment.namespace))
      warnings.push(
        `${field} (${namespaces.join(', ')}) does not match environment ${environment.name}'s own namespace ` +
          `"${environment.namespace}": every object that names no namespace will be refused`,
      );
  });
  return warnings;
}

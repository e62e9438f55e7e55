import type { EnvironmentConfig } from '../config/schema.js';
import { policyError, policyViolations } from '../manifests/policy.js';
import { prepareManifests, type PreparedObject } from '../manifests/prepare.js';
import type { LoadedManifest } from '../manifests/types.js';
import type { ClusterClient } from './cluster.js';
import { resultOf } from './deploy-results.js';
import { DeployError } from './types.js';

/** Parse-level checks that need the cluster: kinds, scope, duplicates, then the environment's policy. */
export async function validate(
  client: ClusterClient,
  environment: EnvironmentConfig,
  manifests: readonly LoadedManifest[],
): Promise<PreparedObject[]> {
  const objects = await prepareManifests(manifests, environment, client.discovery.resolve);
  const violations = policyViolations(objects, environment);
  if (violations.size > 0) {
    const error = policyError(violations);
    // The objects the policy refuses failed; the rest were held back with them (all or nothing).
    const resources = objects.map((object) => {
      const violation = violations.get(object);
      return violation
        ? resultOf(object.ref, 'failed', violation)
        : resultOf(object.ref, 'skipped', 'not applied: policy check failed');
    });
    throw new DeployError(error.code, error.message, { permanent: true, resources });
  }
  return objects;
}

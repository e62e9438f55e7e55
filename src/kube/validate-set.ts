import type { EnvironmentConfig } from '../config/schema.js';
import { policyError, policyViolations } from '../manifests/policy.js';
import { prepareManifests, type PreparedObject } from '../manifests/prepare.js';
import { emptySetMessage } from '../manifests/load.js';
import { describeSource } from '../manifests/problems.js';
import { describeRef } from '../manifests/resource-info.js';
import type { LoadedManifest } from '../manifests/types.js';
import type { ClusterClient } from './cluster.js';
import { resultOf } from './deploy-results.js';
import { inventoryName } from './inventory.js';
import { DeployError, type DeployRequest } from './types.js';

/** Parse-level checks that need the cluster: kinds, scope, duplicates, then the environment's policy. */
export async function validate(
  client: ClusterClient,
  environment: EnvironmentConfig,
  manifests: readonly LoadedManifest[],
  signal?: AbortSignal,
): Promise<PreparedObject[]> {
  const objects = await prepareManifests(manifests, environment, (apiVersion, kind) =>
    client.resolve(apiVersion, kind, signal),
  );
  // prepareManifests lets a kind the set defines do without discovery, whatever went wrong
  // there: an abort is no reason to go on.
  signal?.throwIfAborted();
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

/**
 * validate, and what only a deploy refuses: an empty set the environment does not allow, an
 * object that would overwrite the environment's inventory.
 */
export async function validateForDeploy(
  client: ClusterClient,
  request: Pick<DeployRequest, 'environment' | 'manifests' | 'signal'>,
): Promise<PreparedObject[]> {
  const { environment } = request;
  if (request.manifests.length === 0 && !environment.allowEmpty) {
    throw new DeployError('manifest_invalid', emptySetMessage(environment.name, environment.path, []), {
      permanent: true,
    });
  }

  const objects = await validate(client, environment, request.manifests, request.signal);
  const clash = objects.find(
    (object) =>
      object.ref.kind === 'ConfigMap' &&
      object.ref.namespace === environment.namespace &&
      object.ref.name === inventoryName(environment.name),
  );
  if (clash) {
    throw new DeployError(
      'manifest_invalid',
      `${describeSource(clash.source)}: ${describeRef(clash.ref)} is pushgate's inventory of environment ${environment.name}; choose another name`,
      { permanent: true },
    );
  }
  return objects;
}

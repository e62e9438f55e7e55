import type { EnvironmentConfig } from '../config/schema.js';
import type { LoadedManifest, ManifestObject } from '../manifests/types.js';
import type { ClusterClient } from './cluster.js';
import { Results } from './deploy-results.js';
import { dryRunBeforeWrites, standInNamespace } from './dry-run-set.js';
import { failuresError } from './failures.js';
import { inventoryNamespaceExists } from './inventory.js';
import { validate } from './validate-set.js';

export interface RenderRequest {
  environment: EnvironmentConfig;
  manifests: LoadedManifest[];
  signal?: AbortSignal;
}

/**
 * What a deploy would apply, in file order: validated, policy-checked and server-side
 * dry-run (no writes). Objects of a CRD introduced by the same set are validated locally
 * only, since the server cannot judge them before it exists; objects bound for a Namespace
 * the set introduces are dry-run in the environment's namespace (or `default`) instead.
 */
export async function renderForCluster(
  client: ClusterClient,
  request: RenderRequest,
): Promise<ManifestObject[]> {
  // Outside any job, so with no job log to say it was throttled: whoever runs `pushgate
  // render` watches it, and its waits only make it slower.
  const { environment, signal } = request;
  const objects = await validate(client, environment, request.manifests, signal);
  // Only the choice of a stand-in namespace needs to know; render must not fail for it.
  const namespaceExists = await inventoryNamespaceExists(client, environment, signal).catch(() => false);
  const plan = await dryRunBeforeWrites(
    client,
    objects,
    standInNamespace(environment, namespaceExists),
    signal,
  );
  if (plan.failures.length > 0) {
    const results = new Results(plan.ordered, 'not applied: dry-run of the set failed');
    results.fail(plan.failures);
    throw failuresError(plan.failures, 'server-side dry-run rejected the set', results.list());
  }
  return objects.map((object) => object.object);
}

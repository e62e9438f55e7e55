import type { EnvironmentConfig } from '../config/schema.js';
import { applyStage, type ApplyStage } from './order.js';
import { problemsError, describeSource, type ManifestProblem } from './problems.js';
import {
  canonicalApiVersion,
  describeRef,
  kindKey,
  kindsDefinedByCrds,
  type ResolveResource,
  type ResourceInfo,
} from './resource-info.js';
import type { LoadedManifest, ManifestObject, ManifestSource, ObjectRef } from './types.js';

export const ENVIRONMENT_LABEL = 'pushgate.dev/environment';
export const PRUNE_ANNOTATION = 'pushgate.dev/prune';

/** An object ready to send: namespace defaulted, ownership label set, its API resource known. */
export interface PreparedObject {
  object: ManifestObject;
  source: ManifestSource;
  ref: ObjectRef;
  resource: ResourceInfo;
  stage: ApplyStage;
  /** Its kind comes from a CustomResourceDefinition in this same set. */
  kindFromSet: boolean;
}

/**
 * Resolves every object's kind (from CRDs in the set, else from the cluster), defaults the
 * namespace, labels it with the environment and rejects duplicates. Throws one
 * `manifest_invalid` error listing every problem.
 */
export async function prepareManifests(
  manifests: readonly LoadedManifest[],
  environment: Pick<EnvironmentConfig, 'name' | 'namespace'>,
  resolve: ResolveResource,
): Promise<PreparedObject[]> {
  const fromSet = kindsDefinedByCrds(manifests);
  const resources = await Promise.all(
    manifests.map(async ({ object }) => {
      const defined = fromSet.get(kindKey(object.apiVersion, object.kind));
      // For a kind the set defines, discovery only confirms a scope: an error there (an
      // aggregated API down, say) must not fail a set that would deploy without it.
      const served = await (defined
        ? resolve(object.apiVersion, object.kind).catch(() => undefined)
        : resolve(object.apiVersion, object.kind));
      // A CRD cannot change the scope of a kind the cluster serves (it is immutable, and built-in
      // kinds are not the CRD's to define): the policy goes by the cluster's scope.
      if (defined)
        return {
          resource: served ? { ...defined, namespaced: served.namespaced } : defined,
          kindFromSet: true,
        };
      return served ? { resource: served, kindFromSet: false } : undefined;
    }),
  );

  const problems: ManifestProblem[] = [];
  const prepared: PreparedObject[] = [];
  const seen = new Map<string, ManifestSource>();
  manifests.forEach(({ object, source }, index) => {
    const found = resources[index];
    if (!found) {
      problems.push({
        source,
        message:
          `unknown kind ${object.kind} in ${object.apiVersion}: the cluster does not serve it ` +
          'and no CustomResourceDefinition in this set defines it',
      });
      return;
    }
    const { resource } = found;
    const namespace = resource.namespaced ? (object.metadata.namespace ?? environment.namespace) : undefined;
    // Loading refuses `/v1`; any other way in is read as the API server reads it, so that the
    // checks by name (`v1 Namespace`) hold.
    const apiVersion = canonicalApiVersion(object.apiVersion);
    const ref: ObjectRef = { apiVersion, kind: object.kind, name: object.metadata.name };
    if (namespace !== undefined) ref.namespace = namespace;

    // Same object whatever the version it is written in: group, kind, namespace, name.
    const identity = `${resource.group}|${object.kind}|${namespace ?? ''}|${ref.name}`;
    const first = seen.get(identity);
    if (first) {
      problems.push({
        source,
        message: `duplicate object ${describeRef(ref)}, first defined in ${describeSource(first)}`,
      });
      return;
    }
    seen.set(identity, source);

    prepared.push({
      object: withDefaults({ ...object, apiVersion }, namespace, environment.name),
      source,
      ref,
      resource,
      stage: applyStage(apiVersion, object.kind),
      kindFromSet: found.kindFromSet,
    });
  });
  if (problems.length > 0) throw problemsError('manifest_invalid', problems);
  return prepared;
}

/**
 * What the API server writes into an object's metadata, found in manifests saved with
 * `kubectl get -o yaml`: not the author's intent. Sent, `resourceVersion` and `uid` are
 * preconditions that fail every apply once the object has moved on (409, retried as if
 * transient for minutes), and `managedFields` is refused.
 */
const SERVER_SET_METADATA = [
  'resourceVersion',
  'uid',
  'creationTimestamp',
  'generation',
  'selfLink',
  'managedFields',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
] as const;

function withDefaults(
  object: ManifestObject,
  namespace: string | undefined,
  environment: string,
): ManifestObject {
  const copy = structuredClone(object);
  for (const field of SERVER_SET_METADATA) delete (copy.metadata as Record<string, unknown>)[field];
  // kubectl ignores a namespace on a cluster-scoped object; the API would reject the URL/body mismatch.
  if (namespace === undefined) delete copy.metadata.namespace;
  else copy.metadata.namespace = namespace;
  copy.metadata.labels = { ...copy.metadata.labels, [ENVIRONMENT_LABEL]: environment };
  return copy;
}

import type { LoadedManifest, ObjectRef } from './types.js';

/** What the API serves for a kind: where its objects live and whether they have a namespace. */
export interface ResourceInfo {
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  /** Lower-case plural used in URLs, e.g. `deployments`. */
  plural: string;
  namespaced: boolean;
}

/** Looks a kind up on the cluster (API discovery); undefined when the cluster does not serve it. */
export type ResolveResource = (apiVersion: string, kind: string) => Promise<ResourceInfo | undefined>;

/**
 * `VERSION` (the core group) or `GROUP/VERSION`, each part named. The API server also reads
 * `/v1` as the core group, which every check by name (`v1 Namespace`, `v1 Secret`) would miss.
 */
export function isCanonicalApiVersion(apiVersion: string): boolean {
  return /^(?:[^/]+\/)?[^/]+$/.test(apiVersion);
}

/** `/v1` as the API server reads it (`v1`): for refs written before manifests were held to the canonical form. */
export function canonicalApiVersion(apiVersion: string): string {
  return apiVersion.startsWith('/') ? apiVersion.slice(1) : apiVersion;
}

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf('/');
  if (slash < 0) return { group: '', version: apiVersion };
  return { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

export function kindKey(apiVersion: string, kind: string): string {
  return `${apiVersion}|${kind}`;
}

/** `apps/v1 Deployment apps/web`, the way objects are named in every message. */
export function describeRef(ref: ObjectRef): string {
  const where = ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name;
  return `${ref.apiVersion} ${ref.kind} ${where}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isCrd(apiVersion: string, kind: string): boolean {
  return kind === 'CustomResourceDefinition' && apiVersion.startsWith('apiextensions.k8s.io/');
}

/**
 * Kinds defined by CustomResourceDefinitions in the set, keyed by `kindKey`: their objects
 * can be validated before the CRD exists on the cluster. Malformed CRDs are left for the
 * API server's dry-run to reject with its own message.
 */
export function kindsDefinedByCrds(manifests: readonly LoadedManifest[]): Map<string, ResourceInfo> {
  const kinds = new Map<string, ResourceInfo>();
  for (const { object } of manifests) {
    if (!isCrd(object.apiVersion, object.kind)) continue;
    const spec = object.spec;
    if (!isRecord(spec) || !isRecord(spec.names) || !Array.isArray(spec.versions)) continue;
    const { group, scope } = spec;
    const { kind, plural } = spec.names;
    if (typeof group !== 'string' || typeof kind !== 'string' || typeof plural !== 'string') continue;
    for (const version of spec.versions) {
      if (!isRecord(version) || typeof version.name !== 'string' || version.served === false) continue;
      kinds.set(kindKey(`${group}/${version.name}`, kind), {
        group,
        version: version.name,
        kind,
        plural,
        namespaced: scope !== 'Cluster',
      });
    }
  }
  return kinds;
}

import type { ResourceInfo } from '../manifests/resource-info.js';

/**
 * A name or namespace becomes one segment of an API URL. encodeURIComponent keeps `/` and `%`
 * from splitting it, but not `.` and `..`: URL parsing (here and in the API server) resolves
 * them as dot-segments, so `configmaps/..` would name the Namespace above the ConfigMap and
 * `configmaps/.` the whole collection. Kubernetes refuses such names for every resource; they
 * must never be sent, whatever wrote them (a manifest, an inventory read back).
 */
function segment(value: string, what: string): string {
  if (value === '.' || value === '..') {
    throw new Error(`"${value}" is not a valid object ${what}: it would address another API path`);
  }
  return encodeURIComponent(value);
}

/** `/apis/apps/v1/namespaces/apps/deployments`, or the cluster-wide collection. */
export function collectionPath(resource: ResourceInfo, namespace: string | undefined): string {
  const root =
    resource.group === '' ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`;
  const scope =
    resource.namespaced && namespace !== undefined ? `/namespaces/${segment(namespace, 'namespace')}` : '';
  return `${root}${scope}/${resource.plural}`;
}

export function objectPath(resource: ResourceInfo, namespace: string | undefined, name: string): string {
  return `${collectionPath(resource, namespace)}/${segment(name, 'name')}`;
}

import type { PreparedObject } from '../manifests/prepare.js';
import { KubeApiError } from './http.js';

const RBAC_GROUP = 'rbac.authorization.k8s.io';
const BOUND_KIND: Record<string, string> = { RoleBinding: 'Role', ClusterRoleBinding: 'ClusterRole' };

interface RoleRef {
  kind: string;
  name: string;
}

/** A 404 other than the namespace's own (`namespaces "x" not found`): the role's lookup. */
function isRoleLookupMiss(error: unknown): boolean {
  return error instanceof KubeApiError && error.status === 404 && !error.message.includes('namespaces "');
}

/** The role a RoleBinding or ClusterRoleBinding names, for RBAC's own kinds only. */
function roleRefOf(object: PreparedObject): RoleRef | undefined {
  const { ref } = object;
  if (!object.object.apiVersion.startsWith(`${RBAC_GROUP}/`) || !(ref.kind in BOUND_KIND)) return undefined;
  const roleRef = (object.object as { roleRef?: { kind?: unknown; name?: unknown } }).roleRef;
  if (typeof roleRef?.kind !== 'string' || typeof roleRef.name !== 'string') return undefined;
  return { kind: roleRef.kind, name: roleRef.name };
}

/**
 * A worker without `bind` may create a binding only once the API server has read the rules
 * of the role it names; a dry-run of a binding whose role is still to be created by the
 * same set gets a 404. The object of `set` that is that role, if the refusal is this one.
 */
export function roleAwaitedInSet(
  binding: PreparedObject,
  error: unknown,
  set: readonly PreparedObject[],
): PreparedObject | undefined {
  if (!isRoleLookupMiss(error)) return undefined;
  const roleRef = roleRefOf(binding);
  if (!roleRef) return undefined;
  // A RoleBinding may name a Role of its own namespace or a ClusterRole; a ClusterRoleBinding only a ClusterRole.
  return set.find(
    ({ object, ref }) =>
      object.apiVersion.startsWith(`${RBAC_GROUP}/`) &&
      ref.kind === roleRef.kind &&
      ref.name === roleRef.name &&
      (roleRef.kind === 'ClusterRole' || ref.namespace === binding.ref.namespace),
  );
}

/**
 * The API server's 404 for such a binding names the binding's kind with the role's name
 * (`rolebindings… "reader" not found`): say which role is missing.
 */
export function missingRoleMessage(binding: PreparedObject, error: unknown): string | undefined {
  if (!isRoleLookupMiss(error)) return undefined;
  const roleRef = roleRefOf(binding);
  if (!roleRef) return undefined;
  const where = roleRef.kind === 'Role' ? ` in namespace ${String(binding.ref.namespace)}` : '';
  return `its roleRef names ${roleRef.kind} ${roleRef.name}, which is neither in the cluster${where} nor in this commit`;
}

/** A binding whose dry-run waits for its role, which the same set creates. */
export class RoleNotYetCreatedError extends Error {
  constructor(
    readonly role: PreparedObject,
    readonly refusal: unknown,
  ) {
    super(`waits for ${role.ref.kind} ${role.ref.name}, created by the same commit`);
    this.name = 'RoleNotYetCreatedError';
  }
}

import type { PreparedObject } from '../manifests/prepare.js';
import type { ClusterClient } from './cluster.js';
import { KubeApiError } from './api-error.js';

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

/** The API server's refusal of a binding to a role granting more than the requester holds. */
function isEscalationRefusal(error: unknown): boolean {
  return (
    error instanceof KubeApiError &&
    error.status === 403 &&
    error.message.includes('attempting to grant RBAC permissions not currently held')
  );
}

/** The role a RoleBinding or ClusterRoleBinding names, for RBAC's own kinds only. */
function roleRefOf(object: PreparedObject): RoleRef | undefined {
  const { ref } = object;
  if (!object.object.apiVersion.startsWith(`${RBAC_GROUP}/`) || !(ref.kind in BOUND_KIND)) return undefined;
  const roleRef = (object.object as { roleRef?: { kind?: unknown; name?: unknown } }).roleRef;
  if (typeof roleRef?.kind !== 'string' || typeof roleRef.name !== 'string') return undefined;
  return { kind: roleRef.kind, name: roleRef.name };
}

/** The role a binding names, when `error` is the API server's failure to read it. */
function unreadRoleRef(binding: PreparedObject, error: unknown): RoleRef | undefined {
  return isRoleLookupMiss(error) ? roleRefOf(binding) : undefined;
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
  const roleRef = unreadRoleRef(binding, error);
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
 * The API server's 404 for a binding it cannot check names the binding's kind with the
 * role's name (`rolebindings… "reader" not found`): say which role is missing, and whether the
 * commit holds it (a binding that exists already, or one of a Namespace the commit creates,
 * cannot be checked before its role is there).
 */
export function missingRoleMessage(
  binding: PreparedObject,
  error: unknown,
  set: readonly PreparedObject[],
): string | undefined {
  const roleRef = unreadRoleRef(binding, error);
  if (!roleRef) return undefined;
  if (roleAwaitedInSet(binding, error, set))
    return (
      `its roleRef names ${roleRef.kind} ${roleRef.name}, which this commit creates, and it cannot be checked ` +
      'before that role exists: deploy the role in an earlier commit, or grant the worker `bind` on it'
    );
  const where = roleRef.kind === 'Role' ? ` in namespace ${String(binding.ref.namespace)}` : '';
  return `its roleRef names ${roleRef.kind} ${roleRef.name}, which is neither in the cluster${where} nor in this commit`;
}

/**
 * A ClusterRole every cluster has (kept by the API server itself since 1.14) granting only
 * what every authenticated user holds (GET /healthz, /version...), so anyone may bind it
 * (unless a hardened cluster took that from its users: then the check is inconclusive).
 */
const STAND_IN_ROLE = 'system:public-info-viewer';

/** Why a binding cannot be applied after its role, as objectFailure takes it; none when it can. */
export interface BindingRefusal {
  verb: string;
  reason: unknown;
}

/**
 * Checks, before any write, a binding whose dry-run waits for its role, which the same set
 * creates and whose own dry-run passed. That dry-run shows the worker holds every right the
 * role grants, as binding to it asks, unless the worker holds `escalate`, which lets it
 * create roles granting more. Everything else about the binding (its subjects, admission)
 * is checked by a dry-run of it bound to a stand-in role anyone may bind.
 */
export async function checkBindingBeforeItsRole(
  client: ClusterClient,
  binding: PreparedObject,
  role: PreparedObject,
  signal: AbortSignal | undefined,
): Promise<BindingRefusal | undefined> {
  const resource = role.ref.kind === 'Role' ? 'roles' : 'clusterroles';
  const review = await client.request<{ status?: { allowed?: boolean } }>({
    method: 'POST',
    path: '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: {
        resourceAttributes: {
          group: RBAC_GROUP,
          resource,
          verb: 'escalate',
          name: role.ref.name,
          ...(role.ref.namespace ? { namespace: role.ref.namespace } : {}),
        },
      },
    },
    signal,
  });
  if (review.body.status?.allowed) {
    return {
      verb: 'cannot be checked before its role exists',
      reason: new Error(
        `the worker may escalate ${resource}, so the dry-run of ${role.ref.kind} ${role.ref.name} does not ` +
          `show that it may bind it: grant it \`bind\` on ${resource} too, or deploy the role in an earlier commit`,
      ),
    };
  }
  const standIn = {
    ...binding.object,
    roleRef: { apiGroup: RBAC_GROUP, kind: 'ClusterRole', name: STAND_IN_ROLE },
  };
  try {
    await client.apply(binding.resource, standIn, { dryRun: true, signal });
  } catch (error) {
    // A cluster without the stand-in, or one that took from its users what the stand-in
    // grants: nothing more can be checked before the role exists.
    if (isRoleLookupMiss(error) || isEscalationRefusal(error)) return undefined;
    return {
      verb: `dry-run rejected (checked bound to ClusterRole ${STAND_IN_ROLE} until ${role.ref.kind} ${role.ref.name} exists)`,
      reason: error,
    };
  }
  return undefined;
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

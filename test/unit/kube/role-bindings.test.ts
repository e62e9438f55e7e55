import { describe, expect, it } from 'vitest';
import { KubeApiError } from '../../../src/kube/api-error.js';
import { missingRoleMessage, roleAwaitedInSet } from '../../../src/kube/role-bindings.js';
import { prepareManifests } from '../../../src/manifests/prepare.js';
import type { ResolveResource } from '../../../src/manifests/resource-info.js';
import type { LoadedManifest } from '../../../src/manifests/types.js';

const RBAC = 'rbac.authorization.k8s.io/v1';
const NAMESPACED: Record<string, boolean> = {
  Role: true,
  RoleBinding: true,
  ClusterRole: false,
  ClusterRoleBinding: false,
};
const resolve: ResolveResource = (apiVersion, kind) =>
  Promise.resolve({
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    kind,
    plural: `${kind.toLowerCase()}s`,
    namespaced: NAMESPACED[kind] ?? true,
  });

async function prepare(...objects: Record<string, unknown>[]) {
  const manifests = objects.map((object, index): LoadedManifest => ({
    object: { apiVersion: RBAC, ...object } as LoadedManifest['object'],
    source: { file: 'env/rbac.yaml', document: index + 1 },
  }));
  return prepareManifests(manifests, { name: 'staging', namespace: 'apps' }, resolve);
}

const binding = (kind: string, name: string, roleKind: string, role: string) => ({
  kind,
  metadata: { name },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: roleKind, name: role },
  subjects: [{ kind: 'ServiceAccount', name: 'web', namespace: 'apps' }],
});
/** The API server's answer to a binding whose role it cannot read: its own kind, the role's name. */
const roleMissing = (kind: string, name: string) =>
  new KubeApiError(`${kind}.rbac.authorization.k8s.io "${name}" not found`, {
    status: 404,
    reason: 'NotFound',
  });

describe('roleAwaitedInSet', () => {
  it('finds the Role or ClusterRole of the same set that a binding names, in the binding’s namespace', async () => {
    const [role, clusterRole, roleBinding, toClusterRole, clusterBinding] = await prepare(
      { kind: 'Role', metadata: { name: 'reader' } },
      { kind: 'ClusterRole', metadata: { name: 'viewer' } },
      binding('RoleBinding', 'a', 'Role', 'reader'),
      binding('RoleBinding', 'b', 'ClusterRole', 'viewer'),
      binding('ClusterRoleBinding', 'c', 'ClusterRole', 'viewer'),
    );
    const set = [role!, clusterRole!, roleBinding!, toClusterRole!, clusterBinding!];

    expect(roleAwaitedInSet(roleBinding!, roleMissing('rolebindings', 'reader'), set)).toBe(role);
    expect(roleAwaitedInSet(toClusterRole!, roleMissing('rolebindings', 'viewer'), set)).toBe(clusterRole);
    expect(roleAwaitedInSet(clusterBinding!, roleMissing('clusterrolebindings', 'viewer'), set)).toBe(
      clusterRole,
    );
    // Where it cannot wait for its role (it exists already, say), the refusal says the commit holds it.
    expect(missingRoleMessage(roleBinding!, roleMissing('rolebindings', 'reader'), set)).toBe(
      'its roleRef names Role reader, which this commit creates, and it cannot be checked before that role exists: deploy the role in an earlier commit, or grant the worker `bind` on it',
    );
  });

  it('finds nothing for another refusal, a missing namespace, or a Role of another namespace', async () => {
    const [elsewhere, roleBinding] = await prepare(
      { kind: 'Role', metadata: { name: 'reader', namespace: 'other' } },
      binding('RoleBinding', 'a', 'Role', 'reader'),
    );
    const set = [elsewhere!, roleBinding!];

    expect(roleAwaitedInSet(roleBinding!, roleMissing('rolebindings', 'reader'), set)).toBeUndefined();
    const invalid = new KubeApiError('RoleBinding "a" is invalid', { status: 422 });
    expect(roleAwaitedInSet(roleBinding!, invalid, [...set, roleBinding!])).toBeUndefined();
    const noNamespace = new KubeApiError('namespaces "apps" not found', { status: 404 });
    expect(missingRoleMessage(roleBinding!, noNamespace, set)).toBeUndefined();
    expect(missingRoleMessage(roleBinding!, roleMissing('rolebindings', 'reader'), set)).toBe(
      'its roleRef names Role reader, which is neither in the cluster in namespace apps nor in this commit',
    );
  });
});

import { describe, expect, it } from 'vitest';
import { collectionPath, objectPath } from '../../../src/kube/paths.js';
import type { ResourceInfo } from '../../../src/manifests/resource-info.js';

const configMaps: ResourceInfo = {
  group: '',
  version: 'v1',
  kind: 'ConfigMap',
  plural: 'configmaps',
  namespaced: true,
};

describe('API paths', () => {
  it('encodes a name into one segment', () => {
    expect(objectPath(configMaps, 'apps', 'a/../b')).toBe('/api/v1/namespaces/apps/configmaps/a%2F..%2Fb');
  });

  // A dot-segment is resolved by URL parsing: ".." would address the Namespace, "." the
  // collection (a DELETE there is a deletecollection). Names read back from an inventory
  // written before manifests were checked for this must not reach the API server either.
  it.each(['..', '.'])('refuses the name %j', (name) => {
    expect(() => objectPath(configMaps, 'apps', name)).toThrow(/not a valid object name/);
  });

  it.each(['..', '.'])('refuses the namespace %j', (namespace) => {
    expect(() => collectionPath(configMaps, namespace)).toThrow(/not a valid object namespace/);
    expect(() => objectPath(configMaps, namespace, 'web')).toThrow(/not a valid object namespace/);
  });
});

import { describe, expect, it } from 'vitest';
import { withSecretPlaceholders } from '../../../src/commands/secret-placeholders.js';
import type { ManifestObject } from '../../../src/manifests/types.js';

describe('Secret placeholders for render', () => {
  it('replaces each value of data and stringData with its size in bytes, keeping the keys', () => {
    const secret: ManifestObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's' },
      data: { a: Buffer.from('twelve bytes').toString('base64'), empty: '' },
      stringData: { b: 'ünï' },
    };

    expect(withSecretPlaceholders(secret)).toEqual({
      ...secret,
      data: { a: '[redacted: 12 bytes]', empty: '[redacted: 0 bytes]' },
      stringData: { b: '[redacted: 5 bytes]' },
    });
    expect(secret.data).toEqual({ a: Buffer.from('twelve bytes').toString('base64'), empty: '' });
  });

  it('blanks the last-applied annotation, which holds the values too, and leaves other kinds alone', () => {
    const annotations = {
      'kubectl.kubernetes.io/last-applied-configuration': '{"data":{"a":"c2VjcmV0"}}',
      team: 'web',
    };
    const secret: ManifestObject = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', annotations } };
    const configMap: ManifestObject = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c', annotations },
      data: { a: 'visible' },
    };

    expect(withSecretPlaceholders(secret).metadata.annotations).toEqual({
      'kubectl.kubernetes.io/last-applied-configuration': '[redacted]',
      team: 'web',
    });
    expect(withSecretPlaceholders(configMap)).toBe(configMap);
  });
});

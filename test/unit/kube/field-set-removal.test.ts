import { describe, expect, it } from 'vitest';
import { withoutFields } from '../../../src/kube/field-set-removal.js';

describe('withoutFields', () => {
  const deployment = {
    metadata: { name: 'web', labels: { app: 'web', hand: 'yes' }, finalizers: ['a/keep', 'b/drop'] },
    spec: {
      template: {
        spec: {
          containers: [
            {
              name: 'web',
              image: 'nginx',
              env: [
                { name: 'KEEP', value: '1' },
                { name: 'EXTRA', value: 'x' },
              ],
            },
          ],
        },
      },
    },
  };

  it('drops fields, keyed list items and set values a fieldsV1 names, leaving the rest and the input as they were', () => {
    const result = withoutFields(deployment, {
      'f:metadata': {
        'f:labels': { 'f:hand': {} },
        'f:finalizers': { 'v:"b/drop"': {} },
      },
      'f:spec': {
        'f:template': {
          'f:spec': {
            'f:containers': {
              'k:{"name":"web"}': {
                'f:env': { 'k:{"name":"EXTRA"}': { '.': {}, 'f:name': {}, 'f:value': {} } },
              },
            },
          },
        },
      },
    });

    expect(result.metadata).toEqual({ name: 'web', labels: { app: 'web' }, finalizers: ['a/keep'] });
    expect(result.spec.template.spec.containers[0]!.env).toEqual([{ name: 'KEEP', value: '1' }]);
    expect(deployment.metadata.labels.hand).toBe('yes');
  });

  it('drops a map marked `.` once nothing under it is left, and keeps one that still holds fields', () => {
    const object = { metadata: { annotations: { a: '1' }, labels: { kept: 'x', b: '2' } } };

    const result = withoutFields(object, {
      'f:metadata': { 'f:annotations': { '.': {}, 'f:a': {} }, 'f:labels': { '.': {}, 'f:b': {} } },
    });

    expect(result).toEqual({ metadata: { labels: { kept: 'x' } } });
  });
});

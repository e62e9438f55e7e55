import { describe, expect, it } from 'vitest';
import { checkAgainstCrdSchema } from '../../../src/kube/crd-schema-check.js';
import type { ManifestObject } from '../../../src/manifests/types.js';

const crd: ManifestObject = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'gadgets.example.com' },
  spec: {
    group: 'example.com',
    names: { kind: 'Gadget', plural: 'gadgets' },
    versions: [
      {
        name: 'v1',
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                required: ['size'],
                properties: {
                  size: { type: 'integer', minimum: 1, maximum: 10 },
                  ratio: { type: 'number' },
                  mode: { type: 'string', enum: ['fast', 'safe'] },
                  name: { type: 'string', pattern: '^[a-z]+$', maxLength: 5 },
                  port: { 'x-kubernetes-int-or-string': true },
                  tags: { type: 'array', maxItems: 2, items: { type: 'string' } },
                  labels: { type: 'object', additionalProperties: { type: 'string' } },
                  extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                  lookahead: { type: 'string', pattern: '^(?i)abc$' },
                },
              },
            },
          },
        },
      },
      { name: 'v2' },
    ],
  },
};

function gadget(spec: Record<string, unknown>, apiVersion = 'example.com/v1'): ManifestObject {
  return { apiVersion, kind: 'Gadget', metadata: { name: 'g', labels: { a: 'b' } }, spec };
}

describe('checkAgainstCrdSchema', () => {
  it('accepts an object that fits, nulls, int-or-string, open maps and preserved fields', () => {
    const spec = {
      size: 3,
      ratio: 2,
      mode: 'safe',
      name: 'abc',
      port: 'http',
      tags: ['x'],
      labels: { team: 'web' },
      extra: { anything: [1, { deep: true }] },
      lookahead: 'whatever',
      removed: null,
    };
    expect(checkAgainstCrdSchema(gadget(spec), crd)).toEqual([]);
    expect(checkAgainstCrdSchema(gadget({ size: 1, port: 8080 }), crd)).toEqual([]);
  });

  it('names every field that does not fit, by its path, never by its value', () => {
    const spec = {
      size: 'big',
      ratio: 'x',
      mode: 'slow',
      name: 'ABCDEFG',
      port: true,
      tags: ['a', 'b', 3],
      labels: { team: 7 },
      colour: 'red',
    };
    expect(checkAgainstCrdSchema(gadget(spec), crd)).toEqual([
      '.spec.size: expected integer, got string',
      '.spec.ratio: expected number, got string',
      '.spec.mode: must be one of "fast", "safe"',
      '.spec.name: must be at most 5 characters long',
      '.spec.name: must match ^[a-z]+$',
      '.spec.port: expected integer or string, got boolean',
      '.spec.tags: must have at most 2 items',
      '.spec.tags[2]: expected string, got integer',
      '.spec.labels.team: expected string, got integer',
      '.spec.colour: unknown field',
    ]);
  });

  it('checks required fields, bounds and unknown top-level fields', () => {
    const object = { ...gadget({ size: 11 }), status: {} };
    expect(checkAgainstCrdSchema(object, crd)).toEqual([
      '.spec.size: must be at most 10',
      '.status: unknown field',
    ]);
    expect(checkAgainstCrdSchema(gadget({}), crd)).toEqual(['.spec.size: required']);
  });

  it('lets a required field with a default be left out, as the API server defaults before it validates', () => {
    const defaulted = structuredClone(crd);
    const spec = (
      defaulted.spec as {
        versions: {
          schema?: {
            openAPIV3Schema: { properties: Record<string, { properties: Record<string, unknown> }> };
          };
        }[];
      }
    ).versions[0]!.schema!.openAPIV3Schema.properties.spec!;
    spec.properties.size = { type: 'integer', minimum: 1, maximum: 10, default: 1 };
    expect(checkAgainstCrdSchema(gadget({}), defaulted)).toEqual([]);
    // A default does not excuse a value that does not fit.
    expect(checkAgainstCrdSchema(gadget({ size: 11 }), defaulted)).toEqual([
      '.spec.size: must be at most 10',
    ]);
  });

  it('leaves a version without a schema, or one the CRD lacks, to the API server', () => {
    expect(checkAgainstCrdSchema(gadget({ size: 'big' }, 'example.com/v2'), crd)).toEqual([]);
    expect(checkAgainstCrdSchema(gadget({ size: 'big' }, 'example.com/v9'), crd)).toEqual([]);
  });
});

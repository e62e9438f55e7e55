import { randomBytes } from 'node:crypto';
import { ApiextensionsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { checkAgainstCrdSchema } from '../../src/kube/crd-schema-check.js';
import type { ManifestObject } from '../../src/manifests/types.js';
import { crdManifest } from '../helpers/crd.js';
import { kubeConfigFromTest } from '../helpers/kube.js';

// Each row: a format, a value, and whether the real API server refuses it. Where the local
// check refuses too, a commit carrying that value fails before its CRD is written.
const CASES: { format: string; value: string; serverRefuses: boolean; localRefuses: boolean }[] = [
  {
    format: 'uuid',
    value: '123e4567-e89b-12d3-a456-426614174000',
    serverRefuses: false,
    localRefuses: false,
  },
  { format: 'uuid', value: '123E4567E89B12D3A456426614174000', serverRefuses: false, localRefuses: false },
  { format: 'uuid', value: 'not-a-uuid', serverRefuses: true, localRefuses: true },
  { format: 'uuid4', value: '123e4567-e89b-12d3-a456-426614174000', serverRefuses: true, localRefuses: true },
  { format: 'bsonobjectid', value: '507f1f77bcf86cd799439011', serverRefuses: false, localRefuses: false },
  { format: 'bsonobjectid', value: '507f1f77', serverRefuses: true, localRefuses: true },
  { format: 'ipv4', value: '10.0.0.1', serverRefuses: false, localRefuses: false },
  { format: 'ipv4', value: 'ten.zero.zero.one', serverRefuses: true, localRefuses: true },
  { format: 'ipv4', value: '010.001.000.001', serverRefuses: false, localRefuses: false },
  { format: 'ipv4', value: '::ffff:10.0.0.1', serverRefuses: false, localRefuses: false },
  { format: 'ipv6', value: 'fd00::1', serverRefuses: false, localRefuses: false },
  { format: 'ipv6', value: 'fd00::g', serverRefuses: true, localRefuses: true },
  { format: 'cidr', value: '10.0.0.0/8', serverRefuses: false, localRefuses: false },
  { format: 'cidr', value: 'fd00::/64', serverRefuses: false, localRefuses: false },
  { format: 'cidr', value: '10.0.0.0', serverRefuses: true, localRefuses: true },
  { format: 'cidr', value: '10.0.0.0/33', serverRefuses: true, localRefuses: true },
  { format: 'mac', value: '00:00:5e:00:53:01', serverRefuses: false, localRefuses: false },
  { format: 'mac', value: '0000.5e00.5301', serverRefuses: false, localRefuses: false },
  { format: 'mac', value: '00:00:5e:00:53', serverRefuses: true, localRefuses: true },
  { format: 'byte', value: 'aGVsbG8=', serverRefuses: false, localRefuses: false },
  { format: 'byte', value: 'hello world', serverRefuses: true, localRefuses: true },
  { format: 'byte', value: 'aGVsbG8', serverRefuses: true, localRefuses: true },
  { format: 'date', value: '2026-02-28', serverRefuses: false, localRefuses: false },
  { format: 'date', value: '2026-02-30', serverRefuses: true, localRefuses: true },
  { format: 'date', value: '0001-01-01', serverRefuses: false, localRefuses: false },
  { format: 'date', value: '2024-02-29', serverRefuses: false, localRefuses: false },
  { format: 'date', value: '1900-02-29', serverRefuses: true, localRefuses: true },
  { format: 'date', value: 'yesterday', serverRefuses: true, localRefuses: true },
  { format: 'date-time', value: '2026-12-03T06:00:00Z', serverRefuses: false, localRefuses: false },
  { format: 'date-time', value: '0001-01-01T00:00:00Z', serverRefuses: false, localRefuses: false },
  { format: 'date-time', value: '2026-12-03T06:00:00.123+01:00', serverRefuses: false, localRefuses: false },
  { format: 'date-time', value: '2026-12-03 06:00:00', serverRefuses: true, localRefuses: false },
  { format: 'date-time', value: '2026-12-03T06:00', serverRefuses: true, localRefuses: false },
  { format: 'date-time', value: '2026-12-03t06:00:00z', serverRefuses: false, localRefuses: false },
  { format: 'date-time', value: 'tomorrow at noon', serverRefuses: true, localRefuses: true },
  { format: 'UUID', value: 'not-a-uuid', serverRefuses: false, localRefuses: false },
  // Left to the server: formats whose Go parsers are too lenient to mirror, unknown ones (names
  // are case-sensitive), and date-times the local check takes more loosely than the server.
  { format: 'email', value: 'no at sign', serverRefuses: true, localRefuses: false },
  { format: 'made-up', value: 'anything', serverRefuses: false, localRefuses: false },
];

const group = `f${randomBytes(4).toString('hex')}.pushgate.dev`;
const field = (index: number): string => `f${index}`;
const crd: ManifestObject = crdManifest({
  group,
  kind: 'Gadget',
  plural: 'gadgets',
  scope: 'Cluster',
  spec: {
    type: 'object',
    properties: Object.fromEntries(
      CASES.map(({ format }, index) => [field(index), { type: 'string', format }]),
    ),
  },
});

const extensions = kubeConfigFromTest().makeApiClient(ApiextensionsV1Api);
const customObjects = kubeConfigFromTest().makeApiClient(CustomObjectsApi);

beforeAll(async () => {
  await extensions.createCustomResourceDefinition({ body: crd as never });
  await vi.waitFor(
    async () => {
      const live = await extensions.readCustomResourceDefinition({ name: `gadgets.${group}` });
      const established = live.status?.conditions?.find((c) => c.type === 'Established');
      if (established?.status !== 'True') throw new Error('CRD not established yet');
    },
    { timeout: 15_000, interval: 100 },
  );
});

afterAll(() => extensions.deleteCustomResourceDefinition({ name: `gadgets.${group}` }));

describe('string formats of a CRD schema, checked before the CRD is applied', () => {
  it.each(CASES.map((row, index) => ({ ...row, index })))(
    '$format "$value": server refuses $serverRefuses, local check refuses $localRefuses',
    async ({ index, value, serverRefuses, localRefuses }) => {
      const gadget: ManifestObject = {
        apiVersion: `${group}/v1`,
        kind: 'Gadget',
        metadata: { name: `g${index}` },
        spec: { [field(index)]: value },
      };
      const refusedByServer = await customObjects
        .createClusterCustomObject({ group, version: 'v1', plural: 'gadgets', body: gadget, dryRun: 'All' })
        .then(
          () => false,
          (error: unknown) => {
            if ((error as { code?: number }).code !== 422) throw error;
            return true;
          },
        );
      const problems = checkAgainstCrdSchema(gadget, crd);
      expect({ refusedByServer, refusedLocally: problems.length > 0 }).toEqual({
        refusedByServer: serverRefuses,
        refusedLocally: localRefuses,
      });
      if (localRefuses)
        expect(problems).toEqual([`.spec.${field(index)}: must be a valid ${CASES[index]!.format}`]);
    },
  );
});

/**
 * A CustomResourceDefinition manifest with one version, `v1`, served and stored, whose objects'
 * `spec` follows `spec`. CRDs are cluster-scoped and the test cluster is shared by the run:
 * give each test a group of its own.
 */
export function crdManifest(options: {
  group: string;
  kind: string;
  plural: string;
  scope?: 'Namespaced' | 'Cluster';
  spec: Record<string, unknown>;
}) {
  const { group, kind, plural } = options;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}` },
    spec: {
      group,
      scope: options.scope ?? 'Namespaced',
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: 'object', properties: { spec: options.spec } } },
        },
      ],
    },
  };
}

/** Widgets: a `spec.size` integer (required when `sizeRequired`). */
export function widgetCrd(group: string, options: { sizeRequired?: boolean } = {}) {
  return crdManifest({
    group,
    kind: 'Widget',
    plural: 'widgets',
    spec: {
      type: 'object',
      properties: { size: { type: 'integer' } },
      ...(options.sizeRequired ? { required: ['size'] } : {}),
    },
  });
}

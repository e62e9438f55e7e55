import type { ManifestObject } from './types.js';

/**
 * A core Secret with its `stringData` folded into `data` (UTF-8, base64), as the API server
 * stores it; other objects as they are. Applied as written, server-side apply owns the
 * `stringData` keys, never the `data` keys they become, so a key later removed from git would
 * stay in the cluster (kubernetes/kubernetes#108008). A `stringData` value that is neither
 * a string nor null is left for the API server to refuse. A key in both takes `stringData`'s value, as
 * the API server does.
 */
export function foldStringData(object: ManifestObject): ManifestObject {
  if (object.apiVersion !== 'v1' || object.kind !== 'Secret') return object;
  const { stringData } = object;
  if (stringData === undefined || stringData === null) return object;
  if (typeof stringData !== 'object' || Array.isArray(stringData)) return object;
  const entries = Object.entries(stringData as Record<string, unknown>);
  if (
    !entries.every(
      (entry): entry is [string, string | null] => typeof entry[1] === 'string' || entry[1] === null,
    )
  )
    return object;
  const { data } = object;
  if (data !== undefined && data !== null && !isMapping(data)) return object;
  const { stringData: _folded, ...rest } = object;
  return {
    ...rest,
    data: {
      ...(data ?? {}),
      ...Object.fromEntries(
        // null (`password:` with nothing after it) is stored as an empty value, as the API server does.
        entries.map(([key, value]) => [key, Buffer.from(value ?? '', 'utf8').toString('base64')]),
      ),
    },
  };
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

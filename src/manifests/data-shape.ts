import type { ManifestObject } from './types.js';

/** The fields of core objects that map keys to values, and whether the API server decodes them as bytes. */
const DATA_FIELDS: Record<string, readonly { field: string; bytes: boolean }[]> = {
  Secret: [
    { field: 'data', bytes: true },
    { field: 'stringData', bytes: false },
  ],
  ConfigMap: [{ field: 'binaryData', bytes: true }],
};

/**
 * A core Secret's `data` and `stringData`, and a ConfigMap's `binaryData`, must map keys to
 * strings, base64 where they hold bytes. The API server refuses any other shape by printing
 * what it got, which for a Secret is the secret; and it answers a value that is not base64
 * with a 500, which reads as an outage and would be retried for minutes. Checking here,
 * naming only the field, fails the job at once and keeps values out of records, logs and
 * statuses.
 */
export function dataShapeProblems(object: ManifestObject): string[] {
  const fields = object.apiVersion === 'v1' ? DATA_FIELDS[object.kind] : undefined;
  if (!fields) return [];
  const problems: string[] = [];
  for (const { field, bytes } of fields) {
    const value = object[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      problems.push(`${field}: must be a mapping of key to string`);
      continue;
    }
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      if (item === null) continue;
      if (typeof item !== 'string')
        problems.push(`${field}.${key}: must be a string${bytes ? ' (base64)' : ''}, not ${kindOf(item)}`);
      else if (bytes && !isStandardBase64(item))
        problems.push(
          `${field}.${key}: is not base64 (standard alphabet, padded with "=")${object.kind === 'Secret' ? '; plain text goes in stringData' : ''}`,
        );
    }
  }
  return problems;
}

/** As Go's base64.StdEncoding decodes it (the API server's JSON decoding of bytes): line breaks ignored. */
function isStandardBase64(value: string): boolean {
  return /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(
    value.replace(/[\r\n]/g, ''),
  );
}

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `a ${typeof value}`;
}

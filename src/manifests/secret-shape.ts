import type { ManifestObject } from './types.js';

/**
 * A core Secret's `data` and `stringData` must map keys to strings. The API server refuses any
 * other shape by printing what it got, which for a Secret is the secret; checking the shape
 * here, naming only the field, keeps such a value out of the job record, logs and statuses.
 */
export function secretShapeProblems(object: ManifestObject): string[] {
  if (object.kind !== 'Secret' || object.apiVersion !== 'v1') return [];
  const problems: string[] = [];
  for (const field of ['data', 'stringData'] as const) {
    const value = object[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      problems.push(`${field}: must be a mapping of key to string`);
      continue;
    }
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      if (item !== null && typeof item !== 'string')
        problems.push(
          `${field}.${key}: must be a string${field === 'data' ? ' (base64)' : ''}, not ${kindOf(item)}`,
        );
    }
  }
  return problems;
}

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `a ${typeof value}`;
}

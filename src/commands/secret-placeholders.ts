import type { ManifestObject } from '../manifests/types.js';

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * `object` with each value of a Secret's `data` and `stringData` replaced by its size:
 * render's output ends up in CI logs, where a Secret's values must not (Argo CD masks them
 * too). The keys stay, so a diff still shows which entries a commit adds or drops. Other
 * objects are returned as they are.
 */
export function withSecretPlaceholders(object: ManifestObject): ManifestObject {
  if (object.kind !== 'Secret') return object;
  const result: ManifestObject = { ...object };
  // kubectl apply copies the whole object, values included, into this annotation.
  const annotations = object.metadata.annotations;
  if (annotations?.[LAST_APPLIED] !== undefined) {
    result.metadata = { ...object.metadata, annotations: { ...annotations, [LAST_APPLIED]: '[redacted]' } };
  }
  for (const field of ['data', 'stringData'] as const) {
    const values = object[field];
    if (typeof values !== 'object' || values === null || Array.isArray(values)) continue;
    result[field] = Object.fromEntries(
      Object.entries(values as Record<string, unknown>).map(([key, value]) => [
        key,
        placeholder(value, field === 'data'),
      ]),
    );
  }
  return result;
}

function placeholder(value: unknown, base64: boolean): string {
  if (typeof value !== 'string') return '[redacted]';
  const bytes = base64 ? Buffer.from(value, 'base64').length : Buffer.byteLength(value, 'utf8');
  return `[redacted: ${bytes} bytes]`;
}

/**
 * Both sides of a Secret's change with placeholders, the changed values marked: a value
 * replaced by one of the same size would otherwise show no difference at all.
 */
export function secretPlaceholdersOfChange(
  before: ManifestObject | undefined,
  after: ManifestObject | undefined,
): [ManifestObject | undefined, ManifestObject | undefined] {
  const shownBefore = before && withSecretPlaceholders(before);
  const shownAfter = after && withSecretPlaceholders(after);
  if (!before || !after || !shownAfter || after.kind !== 'Secret') return [shownBefore, shownAfter];
  for (const field of ['data', 'stringData'] as const) {
    const oldValues = before[field];
    const newValues = after[field];
    const shown = shownAfter[field];
    if (!isRecord(oldValues) || !isRecord(newValues) || !isRecord(shown)) continue;
    for (const [key, value] of Object.entries(newValues)) {
      if (Object.hasOwn(oldValues, key) && oldValues[key] !== value)
        shown[key] = `${String(shown[key])} (changed)`;
    }
  }
  return [shownBefore, shownAfter];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

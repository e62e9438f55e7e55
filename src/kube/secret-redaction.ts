import type { ManifestObject } from '../manifests/types.js';

const REDACTED = '[redacted]';
/** Shorter values are left alone: blanking every "a" or "1" would garble the message and hide nothing. */
const MIN_REDACTED_LENGTH = 4;
/** How the API server prints a value of the wrong type: `&value.valueUnstructured{Value:987654321}`. */
const UNSTRUCTURED_VALUE = /valueUnstructured\{Value:[^}]*\}/g;

function secretValues(object: ManifestObject): string[] {
  const values: string[] = [];
  const collect = (field: unknown, encoded: boolean): void => {
    if (field === null || typeof field !== 'object') return;
    for (const value of Object.values(field as Record<string, unknown>)) {
      if (value === null || value === undefined) continue;
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      values.push(text);
      if (encoded && typeof value === 'string') values.push(Buffer.from(value, 'base64').toString('utf8'));
    }
  };
  collect(object.data, true);
  collect(object.stringData, false);
  return values.filter((value) => value.length >= MIN_REDACTED_LENGTH).sort((a, b) => b.length - a.length);
}

/**
 * The API server quotes the offending value in some rejections; for a Secret that value is the
 * secret, and the message goes to the job record, the logs and the commit status. Secrets are
 * scrubbed here, where the message is made, not by each reader.
 */
export function redactSecretValues(message: string, object: ManifestObject): string {
  if (object.kind !== 'Secret') return message;
  let redacted = message.replace(UNSTRUCTURED_VALUE, `valueUnstructured{Value:${REDACTED}}`);
  for (const value of secretValues(object)) redacted = redacted.split(value).join(REDACTED);
  return redacted;
}

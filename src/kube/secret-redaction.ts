import { foldStringData } from '../manifests/secret-string-data.js';
import type { ManifestObject } from '../manifests/types.js';

const REDACTED = '[redacted]';
/** Shorter values are left alone: blanking every "a" or "1" would garble the message and hide nothing. */
const MIN_REDACTED_LENGTH = 4;
/**
 * How the API server prints a value of the wrong type: `&value.valueUnstructured{Value:987654321}`,
 * `got &{plain}`, or Go maps and lists, whose braces nest (`map[string]interface {}{...}`).
 */
const GO_VALUE_DUMP = /valueUnstructured\{|&\{/g;

/** Every scalar under `value`, as text; base64 strings also decoded. */
function leafTexts(value: unknown, encoded: boolean, texts: string[]): void {
  if (value === null || value === undefined) return;
  if (typeof value === 'string') {
    texts.push(value);
    if (encoded) texts.push(Buffer.from(value, 'base64').toString('utf8'));
  } else if (typeof value === 'object') {
    for (const item of Object.values(value as Record<string, unknown>)) leafTexts(item, encoded, texts);
  } else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    texts.push(String(value));
  }
}

function secretValues(object: ManifestObject): string[] {
  const texts: string[] = [];
  leafTexts(object.data, true, texts);
  leafTexts(object.stringData, false, texts);
  // Applied as data (secret-string-data.ts): the API server may quote them base64-encoded.
  const applied = foldStringData(object);
  if (applied !== object) leafTexts(applied.data, false, texts);
  return texts.filter((text) => text.length >= MIN_REDACTED_LENGTH).sort((a, b) => b.length - a.length);
}

/** `message` with the contents of each Go value dump, braces balanced, replaced. */
function redactValueDumps(message: string): string {
  let result = '';
  let copiedUpTo = 0;
  for (const match of message.matchAll(GO_VALUE_DUMP)) {
    const open = match.index + match[0].length;
    if (open <= copiedUpTo) continue;
    let depth = 1;
    let close = open;
    while (close < message.length && depth > 0) {
      if (message[close] === '{') depth += 1;
      else if (message[close] === '}') depth -= 1;
      close += 1;
    }
    const prefix = match[0] === '&{' ? '&{' : 'valueUnstructured{Value:';
    result += `${message.slice(copiedUpTo, match.index)}${prefix}${REDACTED}}`;
    copiedUpTo = close;
  }
  return result + message.slice(copiedUpTo);
}

/**
 * The API server quotes the offending value in some rejections; for a Secret that value is the
 * secret, and the message goes to the job record, the logs and the commit status. Secrets are
 * scrubbed here, where the message is made, not by each reader.
 */
export function redactSecretValues(message: string, object: ManifestObject): string {
  if (object.kind !== 'Secret') return message;
  let redacted = redactValueDumps(message);
  for (const value of secretValues(object)) redacted = redacted.split(value).join(REDACTED);
  return redacted;
}

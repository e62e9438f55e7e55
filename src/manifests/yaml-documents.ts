import { parseAllDocuments } from 'yaml';
import { errorMessage } from '../lib/errors.js';
import { kubernetesYamlTags } from './yaml-scalars.js';

/** yaml's own limit on alias expansions per document is far higher; real manifests need few. */
export const MAX_ALIAS_COUNT = 50;

/** One document of a file, as read: its value, or why it could not be read. */
export type ParsedDocument = { value: unknown; values: number } | { problem: string };

/**
 * Every document of one file, each read to plain values (as kubectl reads YAML 1.1), or the
 * first error of each, in the author's terms. Runs on the main thread for small files and in
 * a worker thread for the others (yaml-parser): it takes only the text and returns only data.
 */
export function parseYamlDocuments(text: string): ParsedDocument[] {
  let documents;
  try {
    documents = parseAllDocuments(text, {
      version: '1.1',
      customTags: kubernetesYamlTags,
      prettyErrors: true,
    });
  } catch (error) {
    return [{ problem: `invalid YAML: ${yamlProblem(errorMessage(error))}` }];
  }
  // parseAllDocuments returns an empty array-like for an empty stream.
  const list = Array.isArray(documents) ? documents : [];
  return list.map((document): ParsedDocument => {
    const firstError = document.errors[0];
    if (firstError)
      return { problem: `invalid YAML: ${yamlProblem(firstError.message.split('\n')[0] ?? '')}` };
    try {
      const value: unknown = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
      return { value, values: countValues(value) };
    } catch (error) {
      return { problem: `invalid YAML: ${yamlProblem(errorMessage(error))}` };
    }
  });
}

/** Every mapping, list and scalar in `value`: what the deploy holds of it once read. */
function countValues(value: unknown): number {
  let count = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    count += 1;
    // One at a time: spreading a list of a million items would overflow the stack.
    if (typeof next === 'object' && next !== null) for (const item of Object.values(next)) pending.push(item);
  }
  return count;
}

/**
 * What the YAML parser said, in the author's terms. yaml names an unresolved alias by its
 * text, and an unquoted value starting with `*` (a password, say) is read as one: say what
 * happened without repeating the value. It recurses once per level of nesting, so a document
 * nested some thousands deep ends in a JavaScript stack overflow.
 */
function yamlProblem(message: string): string {
  if (message.startsWith('Unresolved alias'))
    return 'a value starting with "*" is read as an alias of an anchor that does not exist (quote the value)';
  return message.replace(/^(RangeError: )?Maximum call stack size exceeded/, 'nested too deeply to be read');
}

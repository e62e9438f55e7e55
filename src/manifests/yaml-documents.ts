import { LineCounter, parseAllDocuments, type YAMLError } from 'yaml';
import { errorMessage } from '../lib/errors.js';
import { prescanYaml } from './yaml-prescan.js';
import { kubernetesYamlTags } from './yaml-scalars.js';

/**
 * yaml counts alias expansions (uses × size of the aliased node); this allows ordinary
 * reuse of anchors while stopping "billion laughs" documents long before memory suffers.
 */
export const MAX_ALIAS_COUNT = 50;

/** One document of a file, as read: its value and how many values it holds, or why it could not be read. */
export type ParsedDocument = { value: unknown; values: number } | { problem: string };

/** One file, as read: its documents, or what the prescan refused it for. */
export type FileReading =
  | { references: number; refused: 'references' | 'nesting' }
  | { references: number; documents: ParsedDocument[] };

/**
 * Every document of one file, each read to plain values (as kubectl reads YAML 1.1), or the
 * first error of each, in the author's terms; first, what prescanYaml refuses. Runs on the main
 * thread for small files and in a worker thread for the others (yaml-parser): it takes only
 * the text and returns only data.
 */
export function readYamlFile(text: string, referencesAllowed: number): FileReading {
  const prescan = prescanYaml(text, referencesAllowed);
  const { references } = prescan;
  if (references > referencesAllowed) return { references, refused: 'references' };
  if (prescan.tooDeep) return { references, refused: 'nesting' };
  // Not prettyErrors: yaml would prettify every error (a context line each, quadratic in a
  // file of errors: 4 s for 64 KiB of `}`), where only each document's first is shown.
  const lines = new LineCounter();
  const documents = parseAllDocuments(text, {
    version: '1.1',
    customTags: kubernetesYamlTags,
    prettyErrors: false,
    lineCounter: lines,
  });
  // parseAllDocuments returns an empty array-like for an empty stream.
  const list = Array.isArray(documents) ? documents : [];
  return {
    references,
    documents: list.map((document): ParsedDocument => {
      const firstError = document.errors[0];
      if (firstError) return { problem: `invalid YAML: ${yamlProblem(located(firstError, text, lines))}` };
      try {
        const value: unknown = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
        return { value, values: countValues(value) };
      } catch (error) {
        return { problem: `invalid YAML: ${yamlProblem(errorMessage(error))}` };
      }
    }),
  };
}

/**
 * The error's first line as yaml's prettyErrors writes it (`… at line L, column C:`, the colon
 * where it would show the line), for this one error only.
 */
function located(error: YAMLError, text: string, lines: LineCounter): string {
  // Some messages carry lines of context of their own.
  const message = error.message.split('\n')[0] ?? '';
  const offset = error.pos[0];
  if (offset < 0) return message;
  const { line, col } = lines.linePos(offset);
  const start = lines.lineStarts[line - 1] ?? 0;
  let shown = text.slice(start, lines.lineStarts[line] ?? text.length).replace(/[\n\r]+$/, '');
  if (line > 1 && /^ *$/.test(shown.slice(0, col - 1)))
    shown = text.slice(lines.lineStarts[line - 2] ?? 0, start) + shown;
  return `${message} at line ${line}, column ${col}${/[^ ]/.test(shown) ? ':' : ''}`;
}

/** Every mapping, list and scalar in `value`: what the deploy holds of it once read. */
function countValues(value: unknown): number {
  let count = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    count += 1;
    if (typeof next !== 'object' || next === null) continue;
    // One at a time: spreading a list of a million items would overflow the stack.
    // `!!omap` and `!!set` read as a Map and a Set.
    const items =
      next instanceof Map
        ? [...next.keys(), ...next.values()]
        : next instanceof Set
          ? [...next]
          : Object.values(next);
    for (const item of items) pending.push(item);
  }
  return count;
}

/**
 * What the YAML parser said, in the author's terms. yaml names an unresolved alias by its
 * text, and an unquoted value starting with `*` (a password, say) is read as one: say what
 * happened without repeating the value.
 */
function yamlProblem(message: string): string {
  if (message.startsWith('Unresolved alias'))
    return 'a value starting with "*" is read as an alias of an anchor that does not exist (quote the value)';
  return message.replace(/^(RangeError: )?Maximum call stack size exceeded/, 'nested too deeply to be read');
}

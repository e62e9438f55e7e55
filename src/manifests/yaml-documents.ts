import { Composer, Lexer, LineCounter, Parser, type CST, type Document, type YAMLError } from 'yaml';
import { errorMessage } from '../lib/errors.js';
import { countAnchorsAndAliases } from './yaml-anchors.js';
import { kubernetesYamlTags } from './yaml-scalars.js';

/**
 * yaml counts alias expansions (uses × size of the aliased node); this allows ordinary
 * reuse of anchors while stopping "billion laughs" documents long before memory suffers.
 */
const MAX_ALIAS_COUNT = 50;

/**
 * Levels of nesting a file may hold. yaml composes, and structured clone copies, one level
 * per call: some thousands deep overflow the stack, and yaml, which catches that at every
 * level, then went on at the stack's edge until V8 aborted the whole process (two files of
 * 4,000 `[`). Kubernetes objects, CRD schemas included, nest a few dozen deep.
 */
export const MAX_YAML_NESTING = 256;

/** One document of a file, as read: its value and how many values it holds, or why it could not be read. */
export type ParsedDocument = { value: unknown; values: number } | { problem: string };

/** One file, as read: its documents, or what the prescan refused it for. */
export type FileReading =
  | { references: number; refused: 'references' | 'nesting' }
  | { references: number; documents: ParsedDocument[] };

/**
 * Every document of one file, each read to plain values (as kubectl reads YAML 1.1), or the
 * first error of each, in the author's terms; refused before it is composed when it holds too
 * many anchors or nests too deep. Runs on the main thread for small files and in a worker
 * thread for the others (yaml-parser): it takes only the text and returns only data.
 */
export function readYamlFile(text: string, referencesAllowed: number): FileReading {
  const references = countAnchorsAndAliases(text, referencesAllowed);
  if (references > referencesAllowed) return { references, refused: 'references' };
  const lines = new LineCounter();
  // yaml's Parser keeps its own stack: the syntax tree of each document is measured before the
  // Composer, which recurses, takes it. Not prettyErrors: yaml would prettify every error (a
  // context line each, quadratic in a file of errors: 4 s for 64 KiB of `}`), where only each
  // document's first is shown.
  const composer = new Composer({ version: '1.1', customTags: kubernetesYamlTags, prettyErrors: false });
  const documents: ParsedDocument[] = [];
  const read = (document: Document.Parsed): number => documents.push(readDocument(document, text, lines));
  const parser = new Parser(lines.addNewLine);
  const take = (tokens: Iterable<CST.Token>): boolean => {
    for (const token of tokens) {
      if (nestedDeeperThan(token, MAX_YAML_NESTING)) return false;
      for (const document of composer.next(token)) read(document);
    }
    return true;
  };
  try {
    // Lexeme by lexeme (what Parser.parse does), to stop as soon as the parser's own stack
    // is too deep: it closes the levels one dedent ends by recursing, one call each.
    lines.addNewLine(0);
    for (const lexeme of new Lexer().lex(text)) {
      if (!take(parser.next(lexeme)) || parser.stack.length > MAX_YAML_NESTING)
        return { references, refused: 'nesting' };
    }
    if (!take(parser.end())) return { references, refused: 'nesting' };
  } catch (error) {
    // A stack overflow past both checks is still nesting, not a failure of the deploy.
    if (error instanceof RangeError) return { references, refused: 'nesting' };
    throw error;
  }
  for (const document of composer.end()) read(document);
  return { references, documents };
}

function readDocument(document: Document.Parsed, text: string, lines: LineCounter): ParsedDocument {
  const firstError = document.errors[0];
  if (firstError) return { problem: `invalid YAML: ${yamlProblem(located(firstError, text, lines))}` };
  try {
    const value: unknown = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    const measured = measureValues(value);
    // Aliases can nest what their anchors hold deeper again.
    if (measured.depth > MAX_YAML_NESTING)
      return {
        problem: `invalid YAML: nested more than ${MAX_YAML_NESTING} levels deep once its aliases are expanded`,
      };
    return { value, values: measured.values };
  } catch (error) {
    return { problem: `invalid YAML: ${yamlProblem(errorMessage(error))}` };
  }
}

/**
 * Whether a document's syntax tree nests deeper than `limit`, walked with a stack of its own.
 * A pair in brackets counts 2: `[a: [a: …` is a list of mappings of one pair each.
 */
function nestedDeeperThan(token: CST.Token, limit: number): boolean {
  const pending: [CST.Token, number][] = [[token, 0]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [node, depth] = next;
    if (depth > limit) return true;
    if (node.type === 'document') {
      if (node.value) pending.push([node.value, depth + 1]);
    } else if (node.type === 'block-map' || node.type === 'block-seq' || node.type === 'flow-collection') {
      // `[a: b]` is a list of one mapping: its pair is a level of its own.
      const pairsInList = node.type === 'flow-collection' && node.start.source === '[';
      for (const item of node.items) {
        const step = pairsInList && (item.key !== undefined || item.sep !== undefined) ? 2 : 1;
        if (item.key) pending.push([item.key, depth + step]);
        if (item.value) pending.push([item.value, depth + step]);
      }
    }
  }
  return false;
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

/** Every mapping, list and scalar in `value` (what the deploy holds of it once read), and how deep they nest. */
function measureValues(value: unknown): { values: number; depth: number } {
  let values = 0;
  let deepest = 0;
  const pending: [unknown, number][] = [[value, 1]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [item, depth] = next;
    values += 1;
    deepest = Math.max(deepest, depth);
    if (typeof item !== 'object' || item === null || depth > MAX_YAML_NESTING) continue;
    // One at a time: spreading a list of a million items would overflow the stack.
    // `!!omap` and `!!set` read as a Map and a Set.
    const children =
      item instanceof Map
        ? [...item.keys(), ...item.values()]
        : item instanceof Set
          ? [...item]
          : Object.values(item);
    for (const child of children) pending.push([child, depth + 1]);
  }
  return { values, depth: deepest };
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

import {
  Composer,
  isAlias,
  isCollection,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  Lexer,
  LineCounter,
  Parser,
  visit,
  type CST,
  type Document,
  type Node,
  type YAMLError,
} from 'yaml';
import { errorMessage } from '../lib/errors.js';
import { countAnchorsAndAliases } from './yaml-anchors.js';
import { kubernetesYamlTags } from './yaml-scalars.js';

/**
 * Levels of nesting a file may hold. yaml composes, and structured clone copies, one level
 * per call: some thousands deep overflow the stack, and yaml, which catches that at every
 * level, then went on at the stack's edge until V8 aborted the whole process (two files of
 * 4,000 `[`). Kubernetes objects, CRD schemas included, nest a few dozen deep.
 */
export const MAX_YAML_NESTING = 256;

/**
 * Mappings, lists and scalars of one environment's manifests once read, aliases expanded: what
 * the deploy holds of them (4 MiB of typical manifests is about 230,000; 32 MiB of `{},{},…`
 * would be 11 million objects, more memory than a worker has).
 */
export const MAX_YAML_VALUES_PER_ENVIRONMENT = 3_000_000;

/**
 * Characters of text one document may come to once its aliases are expanded: the most the
 * API server takes in one request (3 MiB; etcd keeps objects of at most 1.5 MiB). Counted
 * apart from values: a 4 KB file can alias one long string into 400 MB of request bodies.
 */
export const MAX_YAML_EXPANDED_CHARS = 3 * 1024 * 1024;

const SET_TAG = 'tag:yaml.org,2002:set';

/** One document of a file, as read: its value and how many values it holds, or why it could not be read. */
export type ParsedDocument = { value: unknown; values: number } | { problem: string };

/** One file, as read: its documents, or what the prescan refused it for. */
export type FileReading =
  | { references: number; refused: 'references' | 'nesting' | 'values' }
  | { references: number; documents: ParsedDocument[] };

/**
 * Every document of one file, each read to plain values (as kubectl reads YAML 1.1), or the
 * first error of each, in the author's terms; refused before it is composed when it holds too
 * many anchors or nests too deep, and before its values are made when they would be more than
 * `valuesAllowed` once its aliases are expanded. Runs on the main thread for small files and in
 * a worker thread for the others (yaml-parser): it takes only the text and returns only data.
 */
export function readYamlFile(text: string, referencesAllowed: number, valuesAllowed: number): FileReading {
  const references = countAnchorsAndAliases(text, referencesAllowed);
  if (references > referencesAllowed) return { references, refused: 'references' };
  const lines = new LineCounter();
  // yaml's Parser keeps its own stack: the syntax tree of each document is measured before the
  // Composer, which recurses, takes it. Not prettyErrors: yaml would prettify every error (a
  // context line each, quadratic in a file of errors: 4 s for 64 KiB of `}`), where only each
  // document's first is shown.
  const composer = new Composer({ version: '1.1', customTags: kubernetesYamlTags, prettyErrors: false });
  const documents: ParsedDocument[] = [];
  let valuesLeft = valuesAllowed;
  // Looked for once per file: documents without a merge key are not walked for one.
  const mayMerge = text.includes('<<');
  const read = (composed: Iterable<Document.Parsed>): 'values' | undefined => {
    for (const document of composed) {
      const reading = readDocument(document, text, lines, valuesLeft, references > 0, mayMerge);
      if (reading === 'values') return 'values';
      if ('values' in reading) valuesLeft -= reading.values;
      documents.push(reading);
    }
    return undefined;
  };
  const parser = new Parser(lines.addNewLine);
  const take = (tokens: Iterable<CST.Token>): 'nesting' | 'values' | undefined => {
    for (const token of tokens) {
      if (nestedDeeperThan(token, MAX_YAML_NESTING)) return 'nesting';
      const refused = read(composer.next(token));
      if (refused) return refused;
    }
    return undefined;
  };
  try {
    // Lexeme by lexeme (what Parser.parse does), to stop as soon as the parser's own stack
    // is too deep: it closes the levels one dedent ends by recursing, one call each.
    lines.addNewLine(0);
    for (const lexeme of new Lexer().lex(text)) {
      const refused =
        take(parser.next(lexeme)) ?? (parser.stack.length > MAX_YAML_NESTING ? 'nesting' : undefined);
      if (refused) return { references, refused };
    }
    const refused = take(parser.end()) ?? read(composer.end());
    if (refused) return { references, refused };
  } catch (error) {
    // A stack overflow past both checks is still nesting, not a failure of the deploy.
    if (error instanceof RangeError) return { references, refused: 'nesting' };
    throw error;
  }
  return { references, documents };
}

/** One document read, or 'values' when its values, aliases expanded, are more than `valuesAllowed`. */
function readDocument(
  document: Document.Parsed,
  text: string,
  lines: LineCounter,
  valuesAllowed: number,
  hasReferences: boolean,
  mayMerge: boolean,
): ParsedDocument | 'values' {
  const firstError = document.errors[0];
  if (firstError) return { problem: `invalid YAML: ${yamlProblem(located(firstError, text, lines))}` };
  // Measured before toJS makes the values, which recurses through aliases and copies what merge
  // keys (`<<: *a`) name: six merges of 120 levels each took most of the stack, and an anchor
  // merged twice into the next, 30 times over, is a billion values.
  const measured = measureExpanded(document, MAX_YAML_NESTING, valuesAllowed, hasReferences);
  if (measured === 'values') return 'values';
  if (measured === 'nesting')
    return {
      problem: `invalid YAML: nested more than ${MAX_YAML_NESTING} levels deep once its aliases are expanded`,
    };
  if (measured === 'text')
    return {
      problem: `invalid YAML: more than ${MAX_YAML_EXPANDED_CHARS / 1024 / 1024} MiB of text once its aliases are expanded, more than the API server takes for one object`,
    };
  const mergeProblem = mayMerge ? mergeOrderProblem(document) : undefined;
  if (mergeProblem) return { problem: `invalid YAML: ${mergeProblem}` };
  try {
    // yaml's own alias limit (uses × aliases within) is off: the values are counted above.
    const value: unknown = document.toJS({ maxAliasCount: -1 });
    return { value, values: measured };
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

/**
 * How many values (mappings, lists and scalars; not mapping keys) a document holds once its
 * aliases are expanded, or which limit it passes first: nesting deeper than `depthLimit`, or
 * more values than `valuesLimit`. An alias counts as the node it names, a merge key's alias one
 * level deeper than its values land (an upper bound of what toJS recurses through). Walked with
 * a stack of our own; only anchored nodes can be reached twice, so only theirs are remembered,
 * and an alias of a node that holds it nests without end.
 */
function measureExpanded(
  document: Document.Parsed,
  depthLimit: number,
  valuesLimit: number,
  hasAliases: boolean,
): number | 'nesting' | 'values' | 'text' {
  // A collection's items take two slots each (a pair's key and value; an item and nothing), an
  // alias one (the node it names): walked by index, as a document may hold millions of nodes.
  type Frame = {
    node: Node;
    slots: number;
    next: number;
    height: number;
    values: number;
    /** Characters of its text, keys included (they are text in a request too). */
    chars: number;
    keysCounted: boolean;
    childCounted: boolean;
  };
  const targets = hasAliases ? aliasTargets(document) : new Map<Node, Node | undefined>();
  const anchored = new Map<Node, { height: number; values: number; chars: number }>();
  const anchoredOpen = new Set<Node>();
  const path: Frame[] = [];
  const enter = (node: Node): void => {
    if (node.anchor) anchoredOpen.add(node);
    const slots = isAlias(node) ? 1 : isCollection(node) ? 2 * node.items.length : 0;
    // A mapping's keys become property names; a `!!set`'s are counted as values too (an upper bound).
    const keysCounted = !isMap(node) || node.tag === SET_TAG;
    path.push({ node, slots, next: 0, height: 0, values: 0, chars: 0, keysCounted, childCounted: true });
  };
  const add = (frame: Frame, counted: boolean, height: number, values: number, chars: number): void => {
    frame.height = Math.max(frame.height, height);
    if (counted) frame.values += values;
    frame.chars += chars;
  };
  if (!isNode(document.contents)) return 1;
  enter(document.contents);
  for (;;) {
    const frame = path[path.length - 1]!;
    if (frame.next < frame.slots) {
      const slot = frame.next++;
      const { node } = frame;
      let child: unknown;
      let counted = true;
      if (isAlias(node)) child = targets.get(node);
      else if (isCollection(node)) {
        const item: unknown = node.items[slot >> 1];
        if (isPair(item)) {
          child = slot % 2 === 1 ? item.value : item.key;
          counted = slot % 2 === 1 || frame.keysCounted;
        } else if (slot % 2 === 1) continue;
        else child = item;
      }
      // A key or value left out (`a:`) is null: one value.
      if (!isNode(child)) add(frame, counted, 1, 1, 4);
      else {
        const known = anchored.get(child);
        if (known) add(frame, counted, known.height, known.values, known.chars);
        else if (anchoredOpen.has(child) || path.length > 2 * depthLimit) return 'nesting';
        else {
          frame.childCounted = counted;
          enter(child);
        }
      }
      continue;
    }
    path.pop();
    // An alias is the node it names; every other node is a level and a value.
    const own = isAlias(frame.node) ? 0 : 1;
    const height = frame.height + own;
    const values = frame.values + own;
    const chars = frame.chars + ownChars(frame.node);
    if (height > depthLimit) return 'nesting';
    if (values > valuesLimit) return 'values';
    if (frame.node.anchor) {
      anchoredOpen.delete(frame.node);
      anchored.set(frame.node, { height, values, chars });
    }
    const parent = path[path.length - 1];
    // The text is only added up (anchored nodes are counted once): judged whole, after values.
    if (!parent) return chars > MAX_YAML_EXPANDED_CHARS ? 'text' : values;
    add(parent, parent.childCounted, height, values, chars);
  }
}

/**
 * A key written before a merge key (`<<`) that also sets it: the YAML merge spec, and yaml,
 * keep the key as written; go-yaml v2 (kubectl, Argo CD) takes the merged value. The object
 * would differ from what those tools check, so the order is refused rather than chosen.
 */
function mergeOrderProblem(document: Document.Parsed): string | undefined {
  const targets = aliasTargets(document);
  let problem: string | undefined;
  visit(document, {
    Map: (_key, map) => {
      const written = new Set<string>();
      for (const pair of map.items) {
        if (!isMergeKey(pair.key)) {
          if (isScalar(pair.key)) written.add(String(pair.key.value));
          continue;
        }
        const clash = mergedKeys(pair.value, targets, new Set()).find((key) => written.has(key));
        if (clash !== undefined) {
          problem = `key "${clash.slice(0, 100)}" is written before a merge key (<<) that also sets it, which kubectl reads as the merged value and the YAML spec as the one written: put the merge key first`;
          return visit.BREAK;
        }
      }
      return undefined;
    },
  });
  return problem;
}

function isMergeKey(key: unknown): boolean {
  return isScalar(key) && typeof key.value === 'symbol' && key.value.description === '<<';
}

/** The keys a merge key's value sets: a mapping's, an alias's target's, a list's items', merges within included. */
function mergedKeys(value: unknown, targets: Map<Node, Node | undefined>, seen: Set<unknown>): string[] {
  if (seen.has(value)) return [];
  seen.add(value);
  if (isAlias(value)) return mergedKeys(targets.get(value), targets, seen);
  if (isSeq(value)) return value.items.flatMap((item) => mergedKeys(item, targets, seen));
  if (!isMap(value)) return [];
  return value.items.flatMap((pair) =>
    isMergeKey(pair.key)
      ? mergedKeys(pair.value, targets, seen)
      : isScalar(pair.key)
        ? [String(pair.key.value)]
        : [],
  );
}

/** A scalar's own text (its value's, as JSON would carry it about); a collection's brackets. */
function ownChars(node: Node): number {
  if (isAlias(node)) return 0;
  if (isScalar(node))
    return typeof node.value === 'string' ? node.value.length + 2 : String(node.value).length;
  return 2;
}

/**
 * The node each alias names: the last anchored with its name before it, in one walk (yaml's
 * `Alias.resolve` walks the whole document each call: 500 aliases in 4 MiB took 2 minutes).
 */
function aliasTargets(document: Document.Parsed): Map<Node, Node | undefined> {
  const anchors = new Map<string, Node>();
  const targets = new Map<Node, Node | undefined>();
  visit(document, {
    Node: (_key, node) => {
      if (isAlias(node)) targets.set(node, anchors.get(node.source));
      else if (node.anchor) anchors.set(node.anchor, node);
    },
  });
  return targets;
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

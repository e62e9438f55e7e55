import { CST, Lexer } from 'yaml';

/**
 * Anchors (`&name`) and aliases (`*name`) allowed in one environment's manifests. yaml's
 * composer takes time quadratic in their number (16,000 in one file: 2 s of a blocked event
 * loop, 64,000: 40 s), which would let one push stall every deploy on the worker; real
 * Kubernetes manifests use a handful at most.
 */
export const MAX_YAML_ANCHORS_AND_ALIASES = 2_000;
/**
 * Levels of nesting a file may hold. yaml composes, and structured clone copies, one level
 * per call: some thousands deep overflow the stack, and yaml, which catches that at every
 * level, then went on at the stack's edge until V8 aborted the whole process (two files of
 * 4,000 `[`). Kubernetes objects, CRD schemas included, nest a few dozen deep.
 */
export const MAX_YAML_NESTING = 256;

const AMPERSAND = 0x26;
const ASTERISK = 0x2a;
/** What yaml's Lexer emits before a scalar's text: a block scalar's text may start with `*`. */
const SCALAR_MARKER = '\u001f';

export interface YamlPrescan {
  /** Anchors and aliases, counted no further than one past the limit given. */
  references: number;
  /** Nested deeper than MAX_YAML_NESTING. */
  tooDeep: boolean;
}

/**
 * What the parser would meet, found in time linear in the text and without recursion (the
 * Lexer, not the composer): anchors and aliases, and how deep the text nests, a level for each
 * bracket and for each indentation deeper than the line that holds it (or `-` and `?` on one
 * line), whatever the width of the indentation.
 */
export function prescanYaml(text: string, referencesAllowed: number): YamlPrescan {
  let references = 0;
  let previous = '';
  let flow = 0;
  let atLineStart = true;
  let indent = 0;
  let onLine = 0;
  let atFlowStart = 0;
  const blocks: number[] = [];
  for (const token of new Lexer().lex(text)) {
    const first = token.charCodeAt(0);
    if ((first === AMPERSAND || first === ASTERISK) && previous !== SCALAR_MARKER) {
      references += 1;
      if (references > referencesAllowed) return { references, tooDeep: false };
    }
    previous = token;
    const type = CST.tokenType(token);
    if (type === 'newline') {
      atLineStart = true;
      indent = 0;
      continue;
    }
    if (type === 'space') {
      if (atLineStart) indent = token.length;
      continue;
    }
    if (atLineStart && flow === 0) {
      // A block level for each indentation deeper than the one it is in.
      while (blocks.length > 0 && blocks.at(-1)! > indent) blocks.pop();
      if (blocks.length === 0 || blocks.at(-1)! < indent) blocks.push(indent);
      onLine = 0;
    }
    atLineStart = false;
    if (flow === 0 && (type === 'seq-item-ind' || type === 'explicit-key-ind')) onLine += 1;
    else if (type === 'flow-map-start' || type === 'flow-seq-start') {
      if (flow === 0) atFlowStart = blocks.length + onLine;
      flow += 1;
    } else if (type === 'flow-map-end' || type === 'flow-seq-end') flow = Math.max(0, flow - 1);
    const depth = flow > 0 ? atFlowStart + flow : blocks.length + onLine;
    if (depth > MAX_YAML_NESTING) return { references, tooDeep: true };
  }
  return { references, tooDeep: false };
}

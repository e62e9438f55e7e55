import { Lexer } from 'yaml';

/**
 * Anchors (`&name`) and aliases (`*name`) allowed in one environment's manifests. yaml's
 * composer takes time quadratic in their number (16,000 in one file: 2 s of a blocked event
 * loop, 64,000: 40 s), which would let one push stall every deploy on the worker; real
 * Kubernetes manifests use a handful at most.
 */
export const MAX_YAML_ANCHORS_AND_ALIASES = 2_000;

const AMPERSAND = 0x26;
const ASTERISK = 0x2a;
/** What yaml's Lexer emits before a scalar's text: a block scalar's text may start with `*`. */
const SCALAR_MARKER = '\u001f';

/**
 * How many anchors and aliases `text` holds, counting no further than `stopAbove + 1`, in
 * time linear in the text (the Lexer, not the composer). Text without `&` or `*` is not lexed.
 */
export function countAnchorsAndAliases(text: string, stopAbove: number): number {
  if (!mayHoldReferences(text)) return 0;
  let count = 0;
  let previous = '';
  for (const token of new Lexer().lex(text)) {
    const first = token.charCodeAt(0);
    if ((first === AMPERSAND || first === ASTERISK) && previous !== SCALAR_MARKER) {
      count += 1;
      if (count > stopAbove) return count;
    }
    previous = token;
  }
  return count;
}

function mayHoldReferences(text: string): boolean {
  return text.includes('&') || text.includes('*');
}

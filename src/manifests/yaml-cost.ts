import { CST, Lexer } from 'yaml';

/**
 * Anchors (`&name`) and aliases (`*name`) allowed in one environment's manifests. yaml's
 * composer takes time quadratic in their number (16,000 in one file: 2 s of a blocked event
 * loop, 64,000: 40 s), which would let one push stall every deploy on the worker; real
 * Kubernetes manifests use a handful at most.
 */
export const MAX_YAML_ANCHORS_AND_ALIASES = 2_000;

/**
 * YAML values one file may hold (see VALUE_COST). yaml's parser holds about 0.5 KB per value
 * until the file is read, whatever its shape: 4 MiB of `[{},{},…]` took 2 GB and killed a
 * worker of 768 MiB, and with it every deploy it ran. 4 MiB of typical manifests (19,000
 * ConfigMaps) is about 620,000, which the parser holds in about 220 MB.
 */
export const MAX_YAML_VALUES_PER_FILE = 750_000;
/** The same for an environment's files together: what the deploy keeps of them once read. */
export const MAX_YAML_VALUES_PER_ENVIRONMENT = 3_000_000;

/**
 * What each token costs the parser, in values: a scalar, a key or an item one; a collection
 * in brackets or a document three (each a node, its pairs or items and its own token
 * structure).
 */
const VALUE_COST: Partial<Record<string, number>> = {
  scalar: 1,
  alias: 1,
  'seq-item-ind': 1,
  'map-value-ind': 1,
  'explicit-key-ind': 1,
  'flow-map-start': 3,
  'flow-seq-start': 3,
  'doc-start': 3,
};

const AMPERSAND = 0x26;
const ASTERISK = 0x2a;
/** What yaml's Lexer emits before a scalar's text: a block scalar's text may start with `*`. */
const SCALAR_MARKER = '\u001f';

export interface YamlCost {
  /** Anchors and aliases. */
  references: number;
  /** Values, weighted by VALUE_COST. */
  values: number;
}

/**
 * What parsing `text` would cost, in time linear in the text (the Lexer, not the composer),
 * counting no further than one past either limit: what to refuse before the parser takes it.
 */
export function measureYaml(text: string, limits: YamlCost): YamlCost {
  const cost: YamlCost = { references: 0, values: 0 };
  let previous = '';
  for (const token of new Lexer().lex(text)) {
    const first = token.charCodeAt(0);
    if ((first === AMPERSAND || first === ASTERISK) && previous !== SCALAR_MARKER) cost.references += 1;
    cost.values += VALUE_COST[CST.tokenType(token) ?? ''] ?? 0;
    if (cost.references > limits.references || cost.values > limits.values) return cost;
    previous = token;
  }
  return cost;
}

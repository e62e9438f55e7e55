import type { ScalarTag, Tags } from 'yaml';

/**
 * The tags of yaml's YAML 1.1 schema, with its numbers replaced by the rules of the Go YAML
 * reader behind kubectl, Flux and Argo CD (go-yaml v2 as sigs.k8s.io/yaml uses it): an
 * unquoted value means the same to pushgate as to `kubectl apply`. yaml's own 1.1 numbers
 * differ in ways that change a manifest silently: `e2` and `.` are NaN there (sent as null),
 * and `12:30` is a base-60 750 there while Go keeps it a string. Timestamps stay strings, as
 * Go hands them to JSON, and `!!binary` is the text its base64 decodes to.
 */
export function kubernetesYamlTags(tags: Tags): Tags {
  const kept = tags.filter((tag) => {
    const name = typeof tag === 'string' ? tag : tag.tag;
    return !REPLACED_TAGS.has(name);
  });
  return [...kept, notANumber, goNumber, explicitInt, explicitFloat, explicitBinary];
}

const INT_TAG = 'tag:yaml.org,2002:int';
const FLOAT_TAG = 'tag:yaml.org,2002:float';
const REPLACED_TAGS = new Set([
  INT_TAG,
  FLOAT_TAG,
  'tag:yaml.org,2002:timestamp',
  'tag:yaml.org,2002:binary',
  // yaml makes a JavaScript Map or Set of these, which JSON sends as `{}`: a Secret's
  // `stringData: !!omap [...]` went out empty (and its keys were removed). Left as the list or
  // mapping they are written as, they read as Go reads them.
  'tag:yaml.org,2002:omap',
  'tag:yaml.org,2002:pairs',
  'tag:yaml.org,2002:set',
]);

const NOT_A_NUMBER = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;

function refuseNotANumber(value: string, onError: (message: string) => void): string {
  onError(`${value} is not a number JSON can carry, so Kubernetes cannot be sent it (quote it for a string)`);
  return value;
}

/**
 * An integer Go reads exactly (int64, uint64) beyond 2^53: a JavaScript number rounds it, or
 * prints it rounded (2^60 as 1152921504606847000), so the cluster would hold another value
 * than `kubectl apply` gives it.
 */
const INEXACT = Symbol('an integer beyond 2^53');

function refuseInexact(value: string, onError: (message: string) => void): string {
  onError(
    `${value} is an integer too large to send exactly (beyond 2^53, it would arrive rounded); quote it if the field takes a string`,
  );
  return value;
}

/**
 * `.nan` and `.inf` are numbers to Go YAML, but JSON has no such values, so kubectl refuses
 * the document ("json: unsupported value"); refused here too, before anything is applied.
 */
const notANumber: ScalarTag = {
  tag: FLOAT_TAG,
  default: true,
  identify: (value) => typeof value === 'number',
  test: NOT_A_NUMBER,
  resolve: refuseNotANumber,
};

/**
 * An explicit `!!int` or `!!float` (yaml looks these up by name, not by test): a value Go
 * cannot read as one is refused, as Go refuses it ("cannot decode !!str … as a !!int").
 */
function explicitNumber(
  tag: string,
  name: string,
  read: (text: string) => number | string | typeof INEXACT | undefined,
): ScalarTag {
  return {
    tag,
    identify: (value) => typeof value === 'number',
    resolve(value, onError) {
      if (NOT_A_NUMBER.test(value)) return refuseNotANumber(value, onError);
      const number = read(value);
      if (number === INEXACT) return refuseInexact(value, onError);
      if (typeof number === 'number') return number;
      onError(`"${value}" is not ${name}`);
      return value;
    },
  };
}
// Go takes for !!int only what it resolves as one: not `1.0`, `1e3`, or `018`.
const explicitInt = explicitNumber(INT_TAG, 'an integer (!!int)', (text) =>
  goInteger(text.replaceAll('_', '')),
);
const explicitFloat = explicitNumber(FLOAT_TAG, 'a number (!!float)', resolveGoNumber);

/**
 * `!!binary` is base64 to Go, decoded to the bytes it names (a string once in JSON); yaml's
 * own 1.1 binary tag would make it a Uint8Array.
 */
const explicitBinary: ScalarTag = {
  tag: 'tag:yaml.org,2002:binary',
  resolve(value, onError) {
    const compact = value.replace(/\s+/g, '');
    if (/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return Buffer.from(compact, 'base64').toString('utf8');
    onError('a !!binary value is not base64');
    return value;
  },
};

/** Every unquoted value that Go might read as a number: the ones it does not stay strings. */
const goNumber: ScalarTag = {
  tag: INT_TAG,
  default: true,
  identify: (value) => typeof value === 'number',
  test: /^[-+.0-9]/,
  resolve(value, onError) {
    const number = resolveGoNumber(value);
    return number === INEXACT ? refuseInexact(value, onError) : number;
  },
};

const GO_INTEGER = /^([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/;
const GO_FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/;
// strconv.ParseFloat of the text as written: `_` only between digits.
const GO_FLOAT_FROM_DOT = /^\.[0-9](?:_?[0-9])*(?:[eE][-+]?[0-9](?:_?[0-9])*)?$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * go-yaml v2's resolve of a plain scalar: underscores dropped, then strconv.ParseInt with
 * base 0 (so `0755` is octal, `0x`, `0o`, `0b` prefixes), else ParseUint, else a float of
 * its decimal pattern; anything else (and any number out of range) stays the string it was.
 */
export function resolveGoNumber(text: string): number | string | typeof INEXACT {
  if (text.startsWith('.')) {
    const value = GO_FLOAT_FROM_DOT.test(text) ? Number(text.replaceAll('_', '')) : NaN;
    return Number.isFinite(value) ? value : text;
  }
  const plain = text.replaceAll('_', '');
  const integer = goInteger(plain);
  if (integer !== undefined) return integer;
  if (GO_FLOAT.test(plain)) {
    const value = Number(plain);
    if (Number.isFinite(value)) return value;
  }
  return text;
}

/** strconv.ParseInt with base 0, else ParseUint: undefined where both fail. */
function goInteger(plain: string): number | typeof INEXACT | undefined {
  const integer = GO_INTEGER.exec(plain);
  if (!integer) return undefined;
  const [, sign, digits = ''] = integer;
  const magnitude = BigInt(/^0[0-7]/.test(digits) ? `0o${digits.slice(1)}` : digits.toLowerCase());
  const value = sign === '-' ? -magnitude : magnitude;
  const fitsInt64 = value >= INT64_MIN && value <= INT64_MAX;
  const fitsUint64 = sign === '' && value <= UINT64_MAX; // ParseUint takes no sign
  if (!fitsInt64 && !fitsUint64) return undefined;
  const number = Number(value);
  // Not only exactness: JSON.stringify(2 ** 60) is 1152921504606847000, another int64 to Go.
  return Number.isSafeInteger(number) ? number : INEXACT;
}

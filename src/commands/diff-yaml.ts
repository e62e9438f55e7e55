import { parse, stringify, type ScalarTag } from 'yaml';

const STRING_TAG = 'tag:yaml.org,2002:str';

/**
 * An object as `pushgate diff` shows it: YAML, keys sorted as kubectl diff has them
 * (apiVersion, data, kind, metadata, spec), one line per line of a multi-line string, so a
 * change inside a ConfigMap's file shows as that line and no other.
 *
 * A string a block scalar (`|`) can hold already comes out that way. One it cannot (CRLF line
 * endings, other control characters) has to be double-quoted, with `\r` written as an escape;
 * that scalar is continued after each `\n` with an escaped line break (a `\` ending the line),
 * which YAML leaves out of the value. The value shown stays exactly the value, `\r` visible,
 * and the text still parses back to it.
 */
export function diffYamlLines(object: unknown): string[] {
  if (object === undefined) return [];
  return stringify(object, {
    lineWidth: 0,
    sortMapEntries: true,
    // Never split by the library: its folded form puts an empty line after each line of the value.
    doubleQuotedMinMultiLineLength: Number.MAX_SAFE_INTEGER,
    customTags: (tags) => tags.map((tag) => (isStringTag(tag) ? lineByLineStrings(tag) : tag)),
  })
    .replace(/\n$/, '')
    .split('\n');
}

function isStringTag(tag: unknown): tag is ScalarTag {
  return typeof tag === 'object' && tag !== null && (tag as ScalarTag).tag === STRING_TAG;
}

function lineByLineStrings(tag: ScalarTag): ScalarTag {
  const plain = tag.stringify;
  if (!plain) return tag;
  return {
    ...tag,
    stringify(item, ctx, onComment, onChompKeep) {
      const text = plain(item, ctx, onComment, onChompKeep);
      // A key stays on one line: YAML wants an implicit key on one.
      if (ctx.implicitKey || typeof item.value !== 'string' || !item.value.includes('\n')) return text;
      if (text.startsWith('"')) return continuedAfterLineFeeds(text, ctx.indent || '  ');
      // A block scalar loses a line of spaces alone (read as indentation): quoted, it is kept.
      if (blockScalarKeeps(item.value)) return text;
      return continuedAfterLineFeeds(JSON.stringify(item.value), ctx.indent || '  ');
    },
  };
}

/** Whether the library's block scalar for `value` reads back as `value`. */
function blockScalarKeeps(value: string): boolean {
  try {
    return (parse(stringify({ v: value }, { lineWidth: 0 })) as { v: unknown }).v === value;
  } catch {
    return false;
  }
}

/**
 * A one-line double-quoted scalar continued on a new line after each `\n` escape but its last.
 * The continuation's leading spaces would be dropped as indentation, so its first is escaped.
 */
export function continuedAfterLineFeeds(quoted: string, indent: string): string {
  const close = quoted.length - 1;
  let result = '';
  for (let i = 0; i < quoted.length;) {
    if (quoted[i] !== '\\') {
      result += quoted[i];
      i += 1;
      continue;
    }
    // An escape is two characters: `\\n` is a backslash and an n, not a line feed.
    const escape = quoted.slice(i, i + 2);
    result += escape;
    i += 2;
    if (escape !== '\\n' || i >= close) continue;
    result += `\\\n${indent}`;
    if (quoted[i] === ' ') result += '\\';
  }
  return result;
}

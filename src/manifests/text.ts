/**
 * The text of a manifest file as kubectl and Flux would read it, or what makes it unreadable.
 * A lossy decode would turn a Latin-1 "é" into U+FFFD and apply that, silently, to a
 * ConfigMap or a Secret; control characters are refused by YAML and JSON alike.
 */
export type ManifestText = { text: string } | { problem: string };

const UTF8 = new TextDecoder('utf-8', { fatal: true });
/** C0 controls other than tab, line feed and carriage return: neither YAML nor JSON takes them raw. */
// eslint-disable-next-line no-control-regex -- matching control characters is this pattern's job
const CONTROL_CHARACTER = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;
/**
 * YAML refuses DEL, the C1 controls and U+FFFE/U+FFFF too; and kubectl's YAML reads NEL,
 * U+2028 and U+2029 as line breaks where this parser keeps them: the same file would apply
 * another value. JSON strings take them all raw.
 */
const YAML_CONTROL_CHARACTER =
  // eslint-disable-next-line no-control-regex -- as above
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029\uFFFE\uFFFF]/;
/**
 * Byte order marks where a later document starts (files joined from Windows tools), as
 * kubectl's YAML skips them: at the start of a line before a marker (`---`, `...`, `%`), a
 * comment or nothing else, and at the start of the first line after a `---` line that is not
 * blank. A mark anywhere else is data, left to the parser.
 */
const BOM_BEFORE_MARKER = /(?<=^|\n)\uFEFF(?=---|\.\.\.|%|#|[ \t]*\r?(?:\n|$))/g;
const BOM_AFTER_DOCUMENT_START = /(?<=(?:^|\n)---(?:[ \t][^\n]*)?\n(?:[ \t]*\r?\n)*)\uFEFF/g;

const LFS_POINTER = /^version https:\/\/git-lfs\.github\.com\/spec\/v1\r?\n/;
const NEWLINE = 0x0a;

export function manifestText(bytes: Buffer, json = false): ManifestText {
  let text: string;
  try {
    text = UTF8.decode(bytes); // drops a leading UTF-8 byte order mark, as YAML does
  } catch {
    return { problem: notUtf8(bytes) };
  }
  const control = (json ? CONTROL_CHARACTER : YAML_CONTROL_CHARACTER).exec(text);
  if (control) {
    const code = control[0].charCodeAt(0).toString(16).padStart(4, '0');
    return {
      problem:
        `line ${lineAt(text, control.index)}: control character U+${code.toUpperCase()} is not allowed ` +
        `(${json ? 'JSON' : 'YAML'} takes it only escaped, "\\u${code}" in a double-quoted string)`,
    };
  }
  if (LFS_POINTER.test(text)) {
    return {
      problem:
        'a Git LFS pointer, not a manifest: pushgate reads files as committed and fetches no LFS ' +
        'objects (keep manifests out of LFS in .gitattributes)',
    };
  }
  return { text: text.replace(BOM_BEFORE_MARKER, '').replace(BOM_AFTER_DOCUMENT_START, '') };
}

/** Where the first byte that is not UTF-8 is; a line break is never part of a multi-byte character. */
function notUtf8(bytes: Buffer): string {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))
    return 'is UTF-16 text (it starts with a UTF-16 byte order mark): save it as UTF-8';
  let start = 0;
  for (let line = 1; ; line++) {
    const end = bytes.indexOf(NEWLINE, start);
    try {
      UTF8.decode(bytes.subarray(start, end === -1 ? bytes.length : end));
    } catch {
      return `line ${line}: not valid UTF-8 (Kubernetes manifests are UTF-8 text; a Latin-1 "é" is one such byte)`;
    }
    if (end === -1) return 'not valid UTF-8';
    start = end + 1;
  }
}

function lineAt(text: string, index: number): number {
  let line = 1;
  for (let at = text.indexOf('\n'); at !== -1 && at < index; at = text.indexOf('\n', at + 1)) line++;
  return line;
}

/**
 * Control characters (C0 but tab and, where kept, newline; DEL; C1) and bidirectional
 * overrides, which a terminal would act on instead of showing: colours, cursor moves, a
 * rewritten title, hidden or reordered text.
 */
function isUnprintable(code: number, keepNewlines: boolean): boolean {
  if (code < 0x20) return code !== 0x09 && !(keepNewlines && code === 0x0a);
  return (
    (code >= 0x7f && code <= 0x9f) || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069)
  );
}

/**
 * Text for a terminal with every such character shown as `\uXXXX`. What a job record holds
 * comes from outside (a pusher's name, a delivery id, manifest file names and API server
 * messages quoted in an error), and `pushgate status` and `sync` print it to an operator's
 * terminal. `keepNewlines` for multi-line messages such as a job's error.
 */
export function printable(text: string, keepNewlines = false): string {
  let shown = '';
  for (const char of text) {
    const code = char.charCodeAt(0);
    shown += isUnprintable(code, keepNewlines) ? `\\u${code.toString(16).padStart(4, '0')}` : char;
  }
  return shown;
}

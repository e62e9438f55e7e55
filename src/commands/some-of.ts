/** A few names and how many more: a fleet's warning or error stays one line. */
export function someOf(names: readonly string[], shown = 5): string {
  if (names.length <= shown + 1) return names.join(', ');
  return `${names.slice(0, shown).join(', ')} and ${names.length - shown} more`;
}

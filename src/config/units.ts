const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/**
 * Parses `0`, `500ms`, `30s`, `5m`, `1h`, `1h30m` into milliseconds; a bare number, written as
 * one or as text (`${VAR}` expands to text), is seconds. Undefined when malformed.
 */
export function parseDurationMs(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text * 1000 : undefined;
  const trimmed = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== trimmed) return undefined;
  return parts.reduce(
    (total, [, amount, unit]) => total + Number(amount) * DURATION_UNITS_MS[unit ?? 's']!,
    0,
  );
}

/** `5m`, `1m30s`, `1h`, `500ms`: a duration as parseDurationMs reads it, for messages. */
export function formatDurationMs(ms: number): string {
  let rest = Math.round(ms);
  const parts: string[] = [];
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
    ['ms', 1],
  ] as const) {
    if (rest < size) continue;
    parts.push(`${Math.floor(rest / size)}${unit}`);
    rest %= size;
  }
  return parts.join('') || '0s';
}

/** Parses `512kb`, `5mb`, `1048576` into bytes; undefined when malformed or under one byte. */
export function parseSizeBytes(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isInteger(text) && text > 0 ? text : undefined;
  const match = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i.exec(text.trim());
  if (!match) return undefined;
  const unit = (match[2] ?? 'b').toLowerCase();
  const bytes = Math.floor(Number(match[1]) * SIZE_UNITS_BYTES[unit]!);
  // A size of nothing would refuse every request: as malformed as the number 0.
  return bytes > 0 ? bytes : undefined;
}

import type { FieldSet } from './field-takeover.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isRecord(value: unknown): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isEmptyContainer(value: Json | undefined): boolean {
  return Array.isArray(value) ? value.length === 0 : isRecord(value) && Object.keys(value).length === 0;
}

/** Whether a list item is the one a `k:{…}` key names: every key field equal. */
function matchesKey(item: Json, key: { [field: string]: Json }): boolean {
  return (
    isRecord(item) &&
    Object.entries(key).every(([field, value]) => JSON.stringify(item[field]) === JSON.stringify(value))
  );
}

/**
 * `object` without the fields of a `fieldsV1` set, as server-side apply drops fields nobody
 * owns any more: `f:name` a field, `k:{…}` the list item with those key fields, `v:…` the
 * set item of that value; a field or item marked `.` goes as a whole once nothing under it
 * is left. Positions (`i:`) are left alone. Returns a copy.
 */
export function withoutFields<T>(object: T, set: FieldSet): T {
  return removeFrom(structuredClone(object) as Json, set) as T;
}

function removeFrom(value: Json, set: FieldSet): Json {
  if (Array.isArray(value)) return removeFromList(value, set);
  if (!isRecord(value)) return value;
  for (const [key, child] of Object.entries(set)) {
    if (!key.startsWith('f:')) continue;
    const name = key.slice(2);
    if (!(name in value)) continue;
    if (Object.keys(child).length === 0) {
      delete value[name];
      continue;
    }
    const left = removeFrom(value[name]!, child);
    if ('.' in child && isEmptyContainer(left)) delete value[name];
    else value[name] = left;
  }
  return value;
}

function removeFromList(items: Json[], set: FieldSet): Json[] {
  let kept = items;
  for (const [key, child] of Object.entries(set)) {
    if (key.startsWith('v:')) {
      const value = key.slice(2);
      kept = kept.filter((item) => JSON.stringify(item) !== value);
    } else if (key.startsWith('k:')) {
      const named = JSON.parse(key.slice(2)) as { [field: string]: Json };
      kept = kept.flatMap((item) => {
        if (!matchesKey(item, named)) return [item];
        if (Object.keys(child).length === 0) return [];
        const left = removeFrom(item, child);
        return '.' in child && isEmptyContainer(left) ? [] : [left];
      });
    }
  }
  return kept;
}

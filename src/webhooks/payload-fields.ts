// Typed reads of the few fields of a push payload pushgate uses, failing with a 400 that
// names the field (`push payload: repository.full_name is required`). Written out rather
// than as a zod schema: this runs for every webhook, where a schema parse was about 3% of the
// receiver's instructions. Every other field, clone URLs included, is never read.
import { PushgateError } from '../lib/errors.js';

/** A JSON object as JSON.parse returns it. */
export type JsonObject = Record<string, unknown>;

function fail(path: string, reason: string): never {
  throw new PushgateError('bad_request', `push payload: ${path} ${reason}`, { status: 400 });
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The payload itself, which must be a JSON object. */
export function payloadObject(body: unknown): JsonObject {
  if (!isObject(body)) fail('(top level)', 'must be an object');
  return body;
}

/** `path` names the field in the error: `repository.full_name`, not just `full_name`. */
export function requiredObject(parent: JsonObject, key: string, path = key): JsonObject {
  const value = parent[key];
  if (value === undefined || value === null) fail(path, 'is required');
  if (!isObject(value)) fail(path, 'must be an object');
  return value;
}

/** Absent and null read as undefined (GitHub sends `"pusher": null` for some pushes). */
export function optionalObject(parent: JsonObject, key: string, path = key): JsonObject | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) fail(path, 'must be an object');
  return value;
}

export function requiredString(parent: JsonObject, key: string, path = key): string {
  const value = optionalString(parent, key, path);
  if (value === undefined) fail(path, 'is required');
  if (value === '') fail(path, 'must not be empty');
  return value;
}

export function optionalString(parent: JsonObject, key: string, path = key): string | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') fail(path, 'must be a string');
  return value;
}

export function optionalBoolean(parent: JsonObject, key: string, path = key): boolean | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') fail(path, 'must be true or false');
  return value;
}

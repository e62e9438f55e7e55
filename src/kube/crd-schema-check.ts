import type { ManifestObject } from '../manifests/types.js';
import { violatesFormat } from './crd-string-formats.js';

/**
 * The part of a CRD's structural schema (apiextensions.k8s.io/v1 `openAPIV3Schema`) that can be
 * checked without the API server. A custom resource whose CRD this same set creates or changes
 * can only be dry-run once the CRD is applied; checking it here first keeps a mistyped field
 * from failing the deploy after the CRDs were written. Whatever is not checked here (CEL rules,
 * lenient formats, `anyOf`/`oneOf`, webhooks) the server still checks in its dry-run after stage 1, so
 * this only ever refuses what the server would refuse too: when in doubt it accepts.
 */
interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  nullable?: boolean;
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minItems?: number;
  maxItems?: number;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  default?: unknown;
}

/** Fields the API server owns or checks itself at the root of every object. */
const ROOT_FIELDS = new Set(['apiVersion', 'kind', 'metadata']);

function typeOf(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function fitsType(schema: Schema, value: unknown): boolean {
  const actual = typeOf(value);
  if (schema['x-kubernetes-int-or-string']) return actual === 'integer' || actual === 'string';
  switch (schema.type) {
    case undefined:
      return true;
    case 'number':
      return actual === 'number' || actual === 'integer';
    default:
      return actual === schema.type;
  }
}

function checkValue(schema: Schema, value: unknown, path: string, problems: string[]): void {
  // A null is how server-side apply says "remove this field"; the server decides the rest.
  if (value === null || value === undefined) return;
  if (!fitsType(schema, value)) {
    const expected = schema['x-kubernetes-int-or-string'] ? 'integer or string' : String(schema.type);
    problems.push(`${path}: expected ${expected}, got ${typeOf(value)}`);
    return;
  }
  if (schema.enum && !schema.enum.some((allowed) => allowed === value)) {
    problems.push(
      `${path}: must be one of ${schema.enum.map((allowed) => JSON.stringify(allowed)).join(', ')}`,
    );
  }
  if (typeof value === 'string') checkString(schema, value, path, problems);
  else if (typeof value === 'number') checkNumber(schema, value, path, problems);
  else if (Array.isArray(value)) checkArray(schema, value, path, problems);
  else if (typeof value === 'object') checkObject(schema, value as Record<string, unknown>, path, problems);
}

function checkString(schema: Schema, value: string, path: string, problems: string[]): void {
  const length = [...value].length;
  if (schema.minLength !== undefined && length < schema.minLength)
    problems.push(`${path}: must be at least ${schema.minLength} characters long`);
  if (schema.maxLength !== undefined && length > schema.maxLength)
    problems.push(`${path}: must be at most ${schema.maxLength} characters long`);
  if (schema.pattern !== undefined) {
    let pattern: RegExp | undefined;
    try {
      pattern = new RegExp(schema.pattern, 'u');
    } catch {
      // RE2 syntax JavaScript does not read: left to the server.
    }
    if (pattern && !pattern.test(value)) problems.push(`${path}: must match ${schema.pattern}`);
  }
  if (schema.format !== undefined && violatesFormat(schema.format, value))
    problems.push(`${path}: must be a valid ${schema.format}`);
}

function checkNumber(schema: Schema, value: number, path: string, problems: string[]): void {
  if (schema.minimum !== undefined) {
    const below = schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum;
    if (below)
      problems.push(
        `${path}: must be ${schema.exclusiveMinimum ? 'greater than' : 'at least'} ${schema.minimum}`,
      );
  }
  if (schema.maximum !== undefined) {
    const above = schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum;
    if (above)
      problems.push(
        `${path}: must be ${schema.exclusiveMaximum ? 'less than' : 'at most'} ${schema.maximum}`,
      );
  }
}

function checkArray(schema: Schema, value: unknown[], path: string, problems: string[]): void {
  if (schema.minItems !== undefined && value.length < schema.minItems)
    problems.push(`${path}: must have at least ${schema.minItems} items`);
  if (schema.maxItems !== undefined && value.length > schema.maxItems)
    problems.push(`${path}: must have at most ${schema.maxItems} items`);
  if (schema.items)
    value.forEach((item, index) => checkValue(schema.items!, item, `${path}[${index}]`, problems));
}

function checkObject(
  schema: Schema,
  value: Record<string, unknown>,
  path: string,
  problems: string[],
  root = false,
): void {
  for (const field of schema.required ?? []) {
    // The API server fills in a default before it validates: a required field with one may be left out.
    if (value[field] === undefined && schema.properties?.[field]?.default === undefined)
      problems.push(`${path}.${field}: required`);
  }
  const embedded = root || schema['x-kubernetes-embedded-resource'] === true;
  for (const [field, item] of Object.entries(value)) {
    const fieldPath = `${path}.${field}`;
    // A null asks server-side apply to remove the field; whether it may is the server's call.
    if (item === null || (embedded && ROOT_FIELDS.has(field))) continue;
    const declared = schema.properties?.[field];
    if (declared) {
      checkValue(declared, item, fieldPath, problems);
      continue;
    }
    const additional = schema.additionalProperties;
    if (typeof additional === 'object') {
      checkValue(additional, item, fieldPath, problems);
      continue;
    }
    // Unknown fields are refused (pushgate applies with fieldValidation=Strict) only where the
    // schema lists its fields and keeps no unknown ones.
    if (schema.properties && additional !== true && !schema['x-kubernetes-preserve-unknown-fields'])
      problems.push(`${fieldPath}: unknown field`);
  }
}

/** The `openAPIV3Schema` of the version of `crd` that `apiVersion` names, if it has one. */
function schemaFor(crd: ManifestObject, apiVersion: string): Schema | undefined {
  const version = apiVersion.slice(apiVersion.indexOf('/') + 1);
  const spec = crd.spec as
    { versions?: { name?: unknown; schema?: { openAPIV3Schema?: unknown } }[] } | undefined;
  const found = spec?.versions?.find((candidate) => candidate.name === version);
  const schema = found?.schema?.openAPIV3Schema;
  return schema !== null && typeof schema === 'object' ? schema : undefined;
}

/**
 * What `crd`'s schema says is wrong with `object`, one line per problem, each naming the
 * field's path (never its value: a custom resource may hold a secret). Empty when it fits,
 * or when the CRD has no schema for the object's version.
 */
export function checkAgainstCrdSchema(object: ManifestObject, crd: ManifestObject): string[] {
  const schema = schemaFor(crd, object.apiVersion);
  if (!schema) return [];
  const problems: string[] = [];
  checkObject(schema, object, '', problems, true);
  return problems;
}

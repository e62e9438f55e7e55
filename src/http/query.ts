import type { ZodType, ZodTypeDef } from 'zod';
import { formatPath } from '../config/load.js';
import { PushgateError } from '../lib/errors.js';

/** Parses query or path parameters; a 400 names the parameter and the reason. */
export function parseParams<T>(schema: ZodType<T, ZodTypeDef, unknown>, input: unknown): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue ? formatPath(issue.path) || 'query' : 'query';
  throw new PushgateError('bad_request', `${where}: ${issue?.message ?? 'is invalid'}`, { status: 400 });
}

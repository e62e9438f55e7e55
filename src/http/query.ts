import { ZodObject, type ZodType, type ZodTypeDef } from 'zod';
import { formatPath } from '../config/load.js';
import { PushgateError } from '../lib/errors.js';

/** Parses query or path parameters; a 400 names the parameter and the reason. */
export function parseParams<T>(schema: ZodType<T, ZodTypeDef, unknown>, input: unknown): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (issue?.code === 'unrecognized_keys') {
    const known = schema instanceof ZodObject ? Object.keys(schema.shape as object).join(', ') : '';
    const unknown = issue.keys.map((key) => JSON.stringify(key)).join(', ');
    const hint = known ? ` (known: ${known})` : '';
    throw new PushgateError('bad_request', `query: unknown parameter ${unknown}${hint}`, { status: 400 });
  }
  const where = issue ? formatPath(issue.path) || 'query' : 'query';
  // `?state=queued&state=failed` arrives as an array: say so in the API's words, not zod's.
  const repeated = issue?.code === 'invalid_type' && issue.received === 'array';
  const message = repeated ? 'give it once (one value per request)' : (issue?.message ?? 'is invalid');
  throw new PushgateError('bad_request', `${where}: ${message}`, { status: 400 });
}

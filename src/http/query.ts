import { ZodObject, z, type ZodType, type ZodTypeDef } from 'zod';
import { formatPath } from '../config/load.js';
import { PushgateError } from '../lib/errors.js';

/** Names echoed in a 400 at most: a request of a thousand unknown parameters gets a short answer. */
const NAMES_SHOWN = 10;

/** `"a", "b"`, or `"a", "b", … and 990 more`: what a request named, quoted and capped. */
export function quotedNames(names: readonly string[]): string {
  const shown = names
    .slice(0, NAMES_SHOWN)
    .map((name) => JSON.stringify(name))
    .join(', ');
  return names.length > NAMES_SHOWN ? `${shown} and ${names.length - NAMES_SHOWN} more` : shown;
}

/** `limit`: a whole number from 1 to `max`, `fallback` when not given. */
export function limitParam(max: number, fallback: number) {
  const range = `must be a whole number from 1 to ${max}`;
  return z
    .string()
    .regex(/^\d+$/, range)
    .transform(Number)
    .pipe(z.number().int().min(1, range).max(max, range))
    .default(String(fallback));
}

/** Parses query or path parameters; a 400 names the parameter and the reason. */
export function parseParams<T>(schema: ZodType<T, ZodTypeDef, unknown>, input: unknown): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (issue?.code === 'unrecognized_keys') {
    const known = schema instanceof ZodObject ? Object.keys(schema.shape as object).join(', ') : '';
    const hint = known ? ` (known: ${known})` : ' (this route takes none)';
    const noun = issue.keys.length > 1 ? 'parameters' : 'parameter';
    throw new PushgateError('bad_request', `query: unknown ${noun} ${quotedNames(issue.keys)}${hint}`, {
      status: 400,
    });
  }
  const where = issue ? formatPath(issue.path) || 'query' : 'query';
  // `?state=queued&state=failed` arrives as an array: say so in the API's words, not zod's.
  const repeated = issue?.code === 'invalid_type' && issue.received === 'array';
  const message = repeated ? 'give it once (one value per request)' : (issue?.message ?? 'is invalid');
  throw new PushgateError('bad_request', `${where}: ${message}`, { status: 400 });
}

import type { ZodError } from 'zod';
import { formatPath } from '../config/load.js';
import { PushgateError } from '../lib/errors.js';

/** A 400 naming the first field of the payload that was missing or wrong. */
export function payloadError(what: string, error: ZodError): PushgateError {
  const issue = error.issues[0];
  const where = issue ? formatPath(issue.path) || '(top level)' : '(top level)';
  const reason = issue?.message === 'Required' ? 'is required' : (issue?.message ?? 'is invalid');
  return new PushgateError('bad_request', `${what}: ${where} ${reason}`, { status: 400 });
}

import { PushgateError } from '../lib/errors.js';

/**
 * JSON.parse of a verified body. GitHub can also deliver `application/x-www-form-urlencoded`
 * with the JSON in a `payload` field; the signature covers the encoded body either way.
 */
export function parseJsonBody(body: string, contentType: string | undefined): unknown {
  let text = body;
  if (contentType?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    const payload = new URLSearchParams(text).get('payload');
    if (payload === null)
      throw new PushgateError('bad_request', 'form-encoded body has no "payload" field', { status: 400 });
    text = payload;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new PushgateError('bad_request', `body is not JSON (${(error as Error).message})`, {
      status: 400,
      cause: error,
    });
  }
}

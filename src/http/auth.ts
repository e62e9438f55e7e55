import type { RequestHandler } from 'express';
import { matchesAnySecret } from '../webhooks/constant-time.js';
import { sendError } from './errors.js';

const BEARER = /^Bearer +(\S+) *$/i;

/** `Authorization: Bearer <token>` against any configured API token; open when none is configured. */
export function bearerAuth(tokens: readonly string[]): RequestHandler {
  if (tokens.length === 0) return (_req, _res, next) => next();
  return (req, res, next) => {
    const match = BEARER.exec(req.headers.authorization ?? '');
    if (match?.[1] !== undefined && matchesAnySecret(match[1], tokens)) {
      next();
      return;
    }
    res.set('WWW-Authenticate', 'Bearer realm="pushgate"');
    sendError(res, 401, 'a valid bearer token is required (Authorization: Bearer <PUSHGATE_API_TOKEN>)');
  };
}

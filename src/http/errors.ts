import type { ServerResponse } from 'node:http';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ZodError } from 'zod';
import { PushgateError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

/**
 * On every answer: job records and errors are live state (and may quote what a request sent),
 * so no cache keeps them and no browser reads them as anything but their declared type.
 */
export const NO_STORE_NO_SNIFF = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
} as const;

/**
 * A JSON answer, as express's `res.json` writes it (same headers), on any node:http response:
 * the webhook path answers without going through express.
 */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  // NO_STORE_NO_SNIFF written out, not spread: after a spread V8 adds each further property
  // through the runtime (about 4,000 instructions each, twice on every webhook's answer).
  res.writeHead(status, {
    'Cache-Control': NO_STORE_NO_SNIFF['Cache-Control'],
    'X-Content-Type-Options': NO_STORE_NO_SNIFF['X-Content-Type-Options'],
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, message: string): void {
  sendJson(res, status, { error: message });
}

/**
 * Redis failures in a request become 503 so callers retry; a corrupt record (not JSON, or
 * not a job) stays a 500, as on the webhook path: retrying it never helps.
 */
export async function fromRedis<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof PushgateError || error instanceof ZodError || error instanceof SyntaxError)
      throw error;
    throw new PushgateError('unavailable', 'the job store (Redis) is unavailable', {
      status: 503,
      cause: error,
    });
  }
}

/**
 * Every route's path and its methods (the routers' own), to tell a wrong method from a wrong
 * path. Matched as the routers match: a trailing slash and the letters' case do not count.
 */
const ROUTE_METHODS: readonly [RegExp, string][] = [
  [/^\/(healthz|readyz|metrics|jobs|environments)\/?$/i, 'GET, HEAD'],
  [/^\/(jobs|environments)\/[^/]+\/?$/i, 'GET, HEAD'],
  [/^\/environments\/[^/]+\/(sync|suspend|resume)\/?$/i, 'POST'],
  [/^\/webhooks\/(github|gitlab)\/?$/i, 'POST'],
];

const allowedMethods = (path: string): string | undefined =>
  ROUTE_METHODS.find(([pattern]) => pattern.test(path))?.[1];

/**
 * OPTIONS names a route's methods in `Allow`, with no body; an unknown path is a 404 as for any
 * method. Ahead of the routers: express's own answer to OPTIONS is plain text.
 */
export const optionsAnswer: RequestHandler = (req, res, next) => {
  if (req.method !== 'OPTIONS') return next();
  const allowed = allowedMethods(req.path);
  if (!allowed) return next();
  res.set('Allow', `${allowed}, OPTIONS`).status(204).end();
};

export const notFound: RequestHandler = (req, res) => {
  const allowed = allowedMethods(req.path);
  if (allowed) {
    res.set('Allow', `${allowed}, OPTIONS`);
    sendError(res, 405, `${req.method} is not allowed on ${req.path}: use ${allowed.split(', ')[0]}`);
    return;
  }
  sendError(res, 404, `no route for ${req.method} ${req.path}`);
};

interface HttpErrorLike {
  status?: unknown;
  statusCode?: unknown;
  expose?: unknown;
  message?: unknown;
  /** body-parser's kind of error (`entity.too.large`), and the limit it enforced, in bytes. */
  type?: unknown;
  limit?: unknown;
}

/** `4 kB`, `1 MB`, else bytes: a body limit as the docs give it. */
function formatLimit(bytes: number): string {
  if (bytes >= 1024 ** 2 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2} MB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} kB`;
  return `${bytes} bytes`;
}

/** What was wrong, for the client errors express and body-parser raise with a bare message. */
function clientErrorMessage(error: unknown, like: HttpErrorLike): string | undefined {
  // The router's decoding of a path parameter (`/jobs/%ZZ`).
  if (error instanceof URIError) return 'malformed percent-encoding in the path';
  if (like.type === 'entity.too.large' && typeof like.limit === 'number')
    return `the body is larger than ${formatLimit(like.limit)}, the most this route takes`;
  // http-errors from express/router say whether their message is safe to show.
  return like.expose === true && typeof like.message === 'string' ? like.message : undefined;
}

/** JSON for every error, express's own included; a stack trace never leaves the process. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    if (error instanceof PushgateError && error.status !== undefined && error.status < 500) {
      sendError(res, error.status, error.message);
      return;
    }
    if (error instanceof PushgateError && error.status === 503) {
      logger.warn({ err: error.cause ?? error, method: req.method, path: req.path }, error.message);
      sendError(res, 503, error.message);
      return;
    }
    const like = (typeof error === 'object' && error !== null ? error : {}) as HttpErrorLike;
    const status =
      typeof like.status === 'number'
        ? like.status
        : typeof like.statusCode === 'number'
          ? like.statusCode
          : 500;
    if (status >= 400 && status < 500) {
      sendError(res, status, clientErrorMessage(error, like) ?? 'bad request');
      return;
    }
    logger.error({ err: error, method: req.method, path: req.path }, 'request failed');
    sendError(res, 500, 'internal error');
  };
}

import { STATUS_CODES } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeApiError } from './api-error.js';
import type { KubeRequest } from './http.js';

/**
 * As client-go (kubectl, Flux, Argo CD): at most 10 retries, each after the server's
 * Retry-After; capped, so a Retry-After of minutes does not stall a deploy that long per request.
 */
export interface ThrottleRetryOptions {
  maxRetries: number;
  maxWaitMs: number;
}

export const THROTTLE_RETRY: ThrottleRetryOptions = { maxRetries: 10, maxWaitMs: 30_000 };

/** A wait for Retry-After about to start, as KubeRequest.onThrottled is told of it. */
export interface ThrottledWait {
  method: KubeRequest['method'];
  /** The API path alone: no query (a continue token, a selector) and no body. */
  path: string;
  status: number;
  waitMs: number;
  /** The retry this wait is before: 1 for the first. */
  retry: number;
  maxRetries: number;
}

/** Retry-After as delta-seconds or an HTTP-date (RFC 9110 §10.2.3), in ms from `now`. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Every HTTP-date form opens with the day's name; Date.parse alone takes "-1" for a year.
  const date = /^[A-Za-z]{3}/.test(text) ? Date.parse(text) : NaN;
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Server-side apply: the same patch twice leaves what once does. */
const APPLY_PATCH = 'application/apply-patch+yaml';

/**
 * How long to wait before sending a refused request again; undefined: not ours to retry.
 * Only an answer with Retry-After is the server asking to come back. A 429 was turned away
 * before any processing, so any request may be sent again; a 5xx may have been processed, so
 * only one whose repeat changes nothing more: a GET, or a server-side apply. A JSON patch's
 * `test` would fail on its own earlier success.
 */
export function throttleWaitMs(
  req: Pick<KubeRequest, 'method' | 'contentType'>,
  answer: { status: number | undefined; retryAfterMs: number | undefined },
  maxWaitMs: number,
): number | undefined {
  const { status, retryAfterMs } = answer;
  if (status === undefined || retryAfterMs === undefined) return undefined;
  const idempotent = req.method === 'GET' || (req.method === 'PATCH' && req.contentType === APPLY_PATCH);
  const repeatable = status === 429 || (status >= 500 && status <= 504 && idempotent);
  return repeatable ? Math.min(retryAfterMs, maxWaitMs) : undefined;
}

/**
 * `send` until the API server stops turning it away with Retry-After. Failing at the first
 * 429 instead would fail the deploy attempt, and the job's retry would send the whole
 * dry-run set again into the same overload.
 */
export async function sendThrottled<T>(
  send: () => Promise<T>,
  req: Pick<KubeRequest, 'method' | 'path' | 'contentType' | 'signal' | 'onThrottled'>,
  options: ThrottleRetryOptions,
): Promise<T> {
  for (let retries = 0; ; retries++) {
    try {
      return await send();
    } catch (error) {
      if (!(error instanceof KubeApiError)) throw error;
      const waitMs = throttleWaitMs(req, error, options.maxWaitMs);
      if (waitMs === undefined) throw error;
      if (retries >= options.maxRetries) throw retriesSpent(error, retries);
      req.onThrottled?.({
        method: req.method,
        path: req.path,
        status: error.status ?? 0,
        waitMs,
        retry: retries + 1,
        maxRetries: options.maxRetries,
      });
      // A shutdown past its deadline, or a health wait that ended, aborts the signal: no
      // Retry-After outlasts them.
      await sleep(waitMs, undefined, { signal: req.signal }).catch((aborted: unknown) => {
        req.signal?.throwIfAborted();
        throw aborted;
      });
    }
  }
}

/** The same status (still transient) and details; the message says it was no outright refusal. */
function retriesSpent(error: KubeApiError, retries: number): KubeApiError {
  const { status = 0, reason, causes, retryAfterMs } = error;
  const what = status === 429 ? 'throttled by the API server' : 'the API server asked to retry later';
  const times = `${retries} ${retries === 1 ? 'time' : 'times'}`;
  return new KubeApiError(
    `${error.message} (${what}: ${status} ${STATUS_CODES[status] ?? 'HTTP error'}, retried ${times})`,
    { status, reason, causes, retryAfterMs, cause: error.cause },
  );
}

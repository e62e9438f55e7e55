/** A provider's answer other than 2xx, with what the retry policy reads from it. */
export class ProviderRequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** Lower-case header names. */
    readonly headers: Readonly<Record<string, string | undefined>>,
  ) {
    super(message);
    this.name = 'ProviderRequestError';
  }
}

export type FailureVerdict =
  /** GitLab refused a transition to the state the status holds already: nothing is owed. */
  | { kind: 'delivered'; httpStatus: string; message: string }
  | { kind: 'retry'; httpStatus: string; message: string; notBefore?: number; tokenRefused?: boolean }
  | { kind: 'give-up'; httpStatus: string; message: string };

export interface ClassifyOptions {
  /** Our own request timeout fired: named a timeout, whatever the client turned it into. */
  timedOut: boolean;
  now: number;
  /** GitHub's secondary limit without `retry-after`: "wait for at least one minute". */
  rateLimitFallbackMs: number;
  /** How long a provider that refused the token (401) is left alone before the next try. */
  credentialsRetryMs: number;
}

/**
 * Retryable: no answer (network, timeout), 5xx, 409, 429, and a 403 that says it is a rate limit
 * (GitHub's secondary limit and an exhausted primary one). A rate limit's wait is never cut
 * short: the next attempt is not before `retry-after` / the reset time. A 401 (a token
 * expired, revoked or mistyped) is the token's, not the status's: someone fixes it (a rotated
 * token file is read at each send), so it is tried again, unhurried. Any other answer will not
 * change by asking again.
 */
export function classifyFailure(error: unknown, options: ClassifyOptions): FailureVerdict {
  const message = error instanceof Error ? error.message : String(error);
  if (options.timedOut || isTimeout(error))
    return { kind: 'retry', httpStatus: 'timeout', message: 'timed out' };
  if (!(error instanceof ProviderRequestError)) return { kind: 'retry', httpStatus: 'network', message };
  const { status, headers } = error;
  const httpStatus = String(status);
  if (status === 400 && /cannot transition status/i.test(message))
    return { kind: 'delivered', httpStatus, message };
  const rateLimited =
    status === 429 ||
    (status === 403 &&
      (headers['retry-after'] !== undefined ||
        headers['x-ratelimit-remaining'] === '0' ||
        headers['ratelimit-remaining'] === '0' ||
        /rate limit/i.test(message)));
  if (rateLimited) {
    const notBefore = rateLimitEnd(headers, options.now) ?? options.now + options.rateLimitFallbackMs;
    return { kind: 'retry', httpStatus, message, notBefore };
  }
  // GitLab locks a commit's statuses while one is written and answers 409 to a write that
  // waited 10 s for it ("Another update to this commit status is in progress"): two
  // environments of one commit, or another tool's status, at the same moment.
  if (status >= 500 || status === 409) return { kind: 'retry', httpStatus, message };
  if (status === 401)
    return {
      kind: 'retry',
      httpStatus,
      message,
      notBefore: options.now + options.credentialsRetryMs,
      tokenRefused: true,
    };
  return { kind: 'give-up', httpStatus, message };
}

/** `retry-after` (seconds or an HTTP date), else the reset time of an exhausted limit (epoch seconds). */
export function rateLimitEnd(
  headers: Readonly<Record<string, string | undefined>>,
  now: number,
): number | undefined {
  const retryAfter = headers['retry-after'];
  if (retryAfter !== undefined) {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds)) return now + Math.max(0, seconds) * 1000;
    const date = Date.parse(retryAfter);
    if (Number.isFinite(date)) return Math.max(now, date);
  }
  for (const [remaining, reset] of [
    ['x-ratelimit-remaining', 'x-ratelimit-reset'],
    ['ratelimit-remaining', 'ratelimit-reset'],
  ] as const) {
    const resetAt = Number(headers[reset]);
    if (headers[remaining] === '0' && Number.isFinite(resetAt)) return Math.max(now, resetAt * 1000);
  }
  return undefined;
}

function isTimeout(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}

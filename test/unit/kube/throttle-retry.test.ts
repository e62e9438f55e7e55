import { describe, expect, it } from 'vitest';
import { KubeApiError } from '../../../src/kube/api-error.js';
import {
  parseRetryAfter,
  sendThrottled,
  throttleWaitMs,
  type ThrottledWait,
} from '../../../src/kube/throttle-retry.js';

describe('Retry-After', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');

  it('reads delta-seconds', () => {
    expect(parseRetryAfter('1', now)).toBe(1_000);
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000);
    expect(parseRetryAfter('0', now)).toBe(0);
  });

  it('reads an HTTP-date as the time left until it, none when it is past', () => {
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', now)).toBe(0);
  });

  it('is absent when the header is missing or not a number of seconds or a date', () => {
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
    expect(parseRetryAfter('-1', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });
});

describe('which refused requests are sent again', () => {
  const maxWaitMs = 30_000;

  const apply = { method: 'PATCH', contentType: 'application/apply-patch+yaml' } as const;
  const jsonPatch = { method: 'PATCH', contentType: 'application/json-patch+json' } as const;

  it('a 429 with Retry-After, whatever the request: the server did not process it', () => {
    for (const method of ['GET', 'POST', 'PUT', 'DELETE'] as const)
      expect(throttleWaitMs({ method }, { status: 429, retryAfterMs: 1_000 }, maxWaitMs)).toBe(1_000);
    for (const patch of [apply, jsonPatch])
      expect(throttleWaitMs(patch, { status: 429, retryAfterMs: 1_000 }, maxWaitMs)).toBe(1_000);
  });

  it('a 500–504 with Retry-After only for a GET or a server-side apply, which are safe to repeat', () => {
    for (const status of [500, 501, 502, 503, 504]) {
      expect(throttleWaitMs({ method: 'GET' }, { status, retryAfterMs: 2_000 }, maxWaitMs)).toBe(2_000);
      expect(throttleWaitMs(apply, { status, retryAfterMs: 2_000 }, maxWaitMs)).toBe(2_000);
      // Its `test` would fail on the first send's success.
      expect(throttleWaitMs(jsonPatch, { status, retryAfterMs: 2_000 }, maxWaitMs)).toBeUndefined();
      for (const method of ['POST', 'PUT', 'DELETE'] as const)
        expect(throttleWaitMs({ method }, { status, retryAfterMs: 2_000 }, maxWaitMs)).toBeUndefined();
    }
    expect(
      throttleWaitMs({ method: 'GET' }, { status: 505, retryAfterMs: 2_000 }, maxWaitMs),
    ).toBeUndefined();
  });

  it('nothing without Retry-After, and no other status', () => {
    const get = { method: 'GET' } as const;
    expect(throttleWaitMs(get, { status: 429, retryAfterMs: undefined }, maxWaitMs)).toBeUndefined();
    expect(throttleWaitMs(get, { status: 503, retryAfterMs: undefined }, maxWaitMs)).toBeUndefined();
    expect(throttleWaitMs(get, { status: undefined, retryAfterMs: 1_000 }, maxWaitMs)).toBeUndefined();
    expect(throttleWaitMs(get, { status: 409, retryAfterMs: 1_000 }, maxWaitMs)).toBeUndefined();
  });

  it('waits no longer than the cap, however long the server asks for', () => {
    expect(throttleWaitMs({ method: 'GET' }, { status: 429, retryAfterMs: 3_600_000 }, maxWaitMs)).toBe(
      30_000,
    );
  });
});

describe('waits told to the request', () => {
  const throttled = (): KubeApiError =>
    new KubeApiError('GET /api/v1/namespaces/apps/configmaps: HTTP 429', { status: 429, retryAfterMs: 0 });

  it('tells onThrottled of each wait before it starts, and not of the refusal that spends the retries', async () => {
    const waits: ThrottledWait[] = [];
    const send = (): Promise<never> => Promise.reject(throttled());

    const sent = sendThrottled(
      send,
      { method: 'GET', path: '/api/v1/namespaces/apps/configmaps', onThrottled: (wait) => waits.push(wait) },
      { maxRetries: 2, maxWaitMs: 30_000 },
    );

    await expect(sent).rejects.toThrow(/retried 2 times/);
    expect(waits).toEqual([
      {
        method: 'GET',
        path: '/api/v1/namespaces/apps/configmaps',
        status: 429,
        waitMs: 0,
        retry: 1,
        maxRetries: 2,
      },
      {
        method: 'GET',
        path: '/api/v1/namespaces/apps/configmaps',
        status: 429,
        waitMs: 0,
        retry: 2,
        maxRetries: 2,
      },
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { classifyFailure, ProviderRequestError } from '../../../src/status/reporters/delivery-failure.js';

const NOW = 1_700_000_000_000;
const options = { timedOut: false, now: NOW, rateLimitFallbackMs: 60_000, credentialsRetryMs: 300_000 };
const answer = (status: number, headers: Record<string, string> = {}, message = 'refused') =>
  new ProviderRequestError(message, status, headers);

describe('classifyFailure (what a failed commit status send means)', () => {
  it('retries no answer, 5xx, 409 and 429; names a timeout a timeout, not a 500', () => {
    expect(classifyFailure(new TypeError('fetch failed'), options)).toMatchObject({
      kind: 'retry',
      httpStatus: 'network',
    });
    expect(classifyFailure(answer(500), { ...options, timedOut: true })).toMatchObject({
      kind: 'retry',
      httpStatus: 'timeout',
    });
    expect(classifyFailure(answer(503), options)).toMatchObject({ kind: 'retry', httpStatus: '503' });
    expect(classifyFailure(answer(429), options)).toMatchObject({ kind: 'retry', httpStatus: '429' });
    // GitLab: "Another update to this commit status is in progress" after 10 s on its lock.
    expect(classifyFailure(answer(409), options)).toMatchObject({ kind: 'retry', httpStatus: '409' });
  });

  it('waits for retry-after, or for the reset of an exhausted limit', () => {
    expect(classifyFailure(answer(403, { 'retry-after': '30' }), options)).toMatchObject({
      kind: 'retry',
      notBefore: NOW + 30_000,
    });
    const reset = String(NOW / 1000 + 600);
    expect(
      classifyFailure(answer(403, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': reset }), options),
    ).toMatchObject({ kind: 'retry', notBefore: NOW + 600_000 });
    expect(
      classifyFailure(answer(429, { 'ratelimit-remaining': '0', 'ratelimit-reset': reset }), options),
    ).toMatchObject({ kind: 'retry', notBefore: NOW + 600_000 });
    // GitHub's secondary limit without retry-after: at least a minute.
    expect(
      classifyFailure(answer(403, {}, 'You have exceeded a secondary rate limit.'), options),
    ).toMatchObject({ kind: 'retry', notBefore: NOW + 60_000 });
  });

  it('tries a refused token (401) again after the credentials wait: someone fixes a token', () => {
    expect(classifyFailure(answer(401, {}, 'Bad credentials'), options)).toEqual({
      kind: 'retry',
      httpStatus: '401',
      message: 'Bad credentials',
      notBefore: NOW + 300_000,
      tokenRefused: true,
    });
  });

  it('gives up on answers that asking again will not change', () => {
    for (const status of [400, 403, 404, 422])
      expect(classifyFailure(answer(status), options)).toMatchObject({
        kind: 'give-up',
        httpStatus: String(status),
      });
  });

  it('counts GitLab’s refusal to enter the state a status holds already as delivered', () => {
    expect(
      classifyFailure(answer(400, {}, 'Cannot transition status via :run from :running'), options),
    ).toMatchObject({ kind: 'delivered' });
  });
});

import { describe, expect, it } from 'vitest';
import type { RequestOptions } from '../../../src/kube/http.js';
import { SharedRequest } from '../../../src/kube/shared-request.js';
import type { ThrottledWait } from '../../../src/kube/throttle-retry.js';

/** A request that answers when told to, and ends with its signal as the transport's does. */
function pending(): {
  send: (options: Required<RequestOptions>) => Promise<string>;
  sent: () => Required<RequestOptions>;
  answer: (value: string) => void;
} {
  let options: Required<RequestOptions> | undefined;
  let answer: (value: string) => void = () => undefined;
  return {
    send: (given) => {
      options = given;
      return new Promise<string>((resolve, reject) => {
        answer = resolve;
        given.signal.addEventListener('abort', () => reject(given.signal.reason as Error), { once: true });
      });
    },
    sent: () => options!,
    answer: (value) => answer(value),
  };
}

const wait: ThrottledWait = {
  method: 'GET',
  path: '/api/v1',
  status: 429,
  waitMs: 1_000,
  retry: 1,
  maxRetries: 10,
};

describe('SharedRequest', () => {
  it('a caller whose signal aborts stops waiting at once; the others get the answer', async () => {
    const request = pending();
    const shared = new SharedRequest(request.send);
    const leaving = new AbortController();
    const reason = new Error('job superseded');

    const left = shared.join({ signal: leaving.signal });
    const stayed = shared.join({ signal: new AbortController().signal });
    const unsignalled = shared.join();
    leaving.abort(reason);

    await expect(left).rejects.toBe(reason);
    expect(request.sent().signal.aborted).toBe(false);
    expect(shared.abandoned).toBe(false);
    request.answer('v1');
    await expect(stayed).resolves.toBe('v1');
    await expect(unsignalled).resolves.toBe('v1');
  });

  it('is aborted, and abandoned, once every caller has stopped waiting', async () => {
    const request = pending();
    const shared = new SharedRequest(request.send);
    const first = new AbortController();
    const second = new AbortController();
    const waiting = [shared.join({ signal: first.signal }), shared.join({ signal: second.signal })];

    first.abort(new Error('first'));
    expect(shared.abandoned).toBe(false);
    second.abort(new Error('second'));

    expect(shared.abandoned).toBe(true);
    expect(request.sent().signal.reason).toEqual(new Error('second'));
    await expect(Promise.all(waiting)).rejects.toThrow('first');
    await expect(shared.answer).rejects.toThrow('second');
  });

  it('refuses a caller whose signal has aborted already, without counting it', async () => {
    const request = pending();
    const shared = new SharedRequest(request.send);
    const staying = shared.join({ signal: new AbortController().signal });

    await expect(shared.join({ signal: AbortSignal.abort(new Error('gone')) })).rejects.toThrow('gone');
    request.answer('v1');
    await expect(staying).resolves.toBe('v1');
  });

  it('tells its throttled waits to every caller still waiting', async () => {
    const request = pending();
    const shared = new SharedRequest(request.send);
    const told: string[] = [];
    const leaving = new AbortController();
    const left = shared.join({ signal: leaving.signal, onThrottled: () => told.push('left') });
    const stayed = shared.join({ onThrottled: () => told.push('stayed') });

    request.sent().onThrottled(wait);
    leaving.abort(new Error('gone'));
    await left.catch(() => undefined);
    request.sent().onThrottled(wait);
    request.answer('v1');
    await stayed;

    expect(told).toEqual(['left', 'stayed', 'stayed']);
  });
});

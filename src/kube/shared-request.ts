import type { RequestOptions } from './http.js';
import type { ThrottledWait } from './throttle-retry.js';

/**
 * One request whose answer several callers wait for (discovery, shared by every job of a
 * cluster), each with its own RequestOptions. A caller whose signal aborts stops waiting at
 * once, with its abort; the request itself is aborted only once every caller has stopped
 * waiting so, since another job's lookup must not fail for one job's shutdown or supersession.
 * Its throttled waits are told to every caller still waiting: each job's log says what holds
 * it up.
 */
export class SharedRequest<T> {
  private readonly controller = new AbortController();
  private readonly callers = new Set<RequestOptions>();
  private settled = false;
  /** The request's own outcome; an abandoned request rejects with the last caller's abort. */
  readonly answer: Promise<T>;

  constructor(send: (options: Required<RequestOptions>) => Promise<T>) {
    this.answer = send({
      signal: this.controller.signal,
      onThrottled: (wait: ThrottledWait) => {
        for (const caller of this.callers) caller.onThrottled?.(wait);
      },
    });
    // Also the handler of a rejection no caller waits for any more.
    const settle = (): void => {
      this.settled = true;
    };
    this.answer.then(settle, settle);
  }

  /** Every caller stopped waiting before the answer came: it will never come. Ask anew. */
  get abandoned(): boolean {
    return this.controller.signal.aborted;
  }

  /** The answer, or the abort of `options.signal` as soon as it aborts. */
  join(options: RequestOptions = {}): Promise<T> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    // A caller of its own, even when two pass the same options; one without a signal stays
    // to the end, and so does the request.
    const caller: RequestOptions = { ...options };
    this.callers.add(caller);
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        this.callers.delete(caller);
        if (this.callers.size === 0 && !this.settled) this.controller.abort(signal?.reason);
        reject(signal?.reason as Error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      void this.answer.then(resolve, reject).finally(() => {
        this.callers.delete(caller);
        signal?.removeEventListener('abort', onAbort);
      });
    });
  }
}

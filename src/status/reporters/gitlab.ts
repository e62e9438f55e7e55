import { Commits } from '@gitbeaker/rest';
import { ProviderRequestError } from './delivery-failure.js';
import { clipDescription, type CommitStatusSender, type DeployStatusState } from './types.js';

type GitlabState = 'pending' | 'success' | 'failed' | 'canceled';

/**
 * SPEC §4's `pending` → `success`/`failure`, in GitLab's names. GitLab refuses `pending` on a
 * status that is pending already (`enqueue` from `pending`); the outbox never posts a state
 * the commit shows already, and takes that refusal as delivered. GitLab shows an overtaken
 * pipeline as `canceled`; a superseded deploy is the same thing.
 */
const GITLAB_STATES: Record<DeployStatusState, GitlabState> = {
  pending: 'pending',
  success: 'success',
  failure: 'failed',
  superseded: 'canceled',
  canceled: 'canceled',
};

/** GenericCommitStatus validates `target_url` to at most 255 characters. */
const MAX_TARGET_URL = 255;

type RequesterFn = NonNullable<ConstructorParameters<typeof Commits>[0]['requesterFn']>;
type ResourceOptions = Parameters<RequesterFn>[0];

/**
 * One request per call, no retry: gitbeaker's own requester retries 429 and 502 ten times
 * within a fraction of a second and ignores `Retry-After`. pushgate's outbox decides when to
 * try again, reading the rate-limit headers this requester hands it in ProviderRequestError.
 */
const singleShotRequester = ((resource: ResourceOptions) => {
  const request = async (method: string, endpoint: string, options: Record<string, unknown> = {}) => {
    const headers: Record<string, string> = { ...(resource.headers as Record<string, string>) };
    for (const [name, value] of Object.entries(resource.authHeaders)) headers[name] = await value();
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(snakeCaseKeys(options.body as Record<string, unknown>));
      headers['content-type'] = 'application/json';
    }
    const base = resource.url.endsWith('/') ? resource.url : `${resource.url}/`;
    const url = new URL(endpoint, base);
    const response = await fetch(url, {
      method,
      headers,
      body,
      signal: options.signal as AbortSignal | undefined,
      // fetch drops Authorization on a redirect to another host, not PRIVATE-TOKEN; and a 301
      // turns the POST into a GET.
      redirect: 'manual',
    });
    const text = await response.text();
    const responseHeaders = Object.fromEntries(
      [...response.headers].map(([name, value]) => [name.toLowerCase(), value]),
    );
    if (response.status >= 300 && response.status < 400)
      throw new ProviderRequestError(
        redirectMessage(url, responseHeaders.location),
        response.status,
        responseHeaders,
      );
    if (!response.ok)
      throw new ProviderRequestError(gitlabMessage(text, response.status), response.status, responseHeaders);
    const isJson = (response.headers.get('content-type') ?? '').includes('json');
    return {
      body: isJson && text !== '' ? (JSON.parse(text) as unknown) : text,
      headers: responseHeaders,
      status: response.status,
    };
  };
  const requester = Object.fromEntries(
    ['get', 'post', 'put', 'patch', 'delete'].map((method) => [
      method,
      (endpoint: string, options?: Record<string, unknown>) =>
        request(method.toUpperCase(), endpoint, options),
    ]),
  );
  return requester;
}) as unknown as RequesterFn;

export function createGitlabSender(options: {
  token: () => string;
  url: string;
  timeoutMs: number;
}): CommitStatusSender {
  const commits = new Commits({
    // Called per request: a token file is read again at each send.
    token: () => Promise.resolve(options.token()),
    host: options.url.replace(/\/$/, ''),
    queryTimeout: options.timeoutMs,
    requesterFn: singleShotRequester,
  });
  return {
    async send(delivery, signal) {
      // The project path is its id once URL-encoded; gitbeaker encodes it.
      const request = commits.editStatus(delivery.repo, delivery.sha, GITLAB_STATES[delivery.state], {
        name: delivery.context,
        // Without ref GitLab files the status under the first branch that contains the commit.
        ref: delivery.ref,
        // A link GitLab would refuse must not cost the status itself.
        ...(delivery.targetUrl.length <= MAX_TARGET_URL ? { targetUrl: delivery.targetUrl } : {}),
        description: clipDescription(delivery.description, 255),
      });
      // gitbeaker takes no signal per request (its own timeout is queryTimeout): a shutdown
      // must not wait for an answer it will not use.
      request.catch(() => undefined);
      await Promise.race([request, aborted(signal)]);
    },
  };
}

/** Rejects when `signal` aborts; a rejection after the race is over is handled (ignored). */
function aborted(signal: AbortSignal): Promise<never> {
  const promise = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error);
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
  promise.catch(() => undefined);
  return promise;
}

function snakeCaseKeys(body: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(body).map(([key, value]) => [key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), value]),
  );
}

/** Where the instance sends its API, to be configured instead: pushgate does not take the token there. */
function redirectMessage(requested: URL, location: string | undefined): string {
  let target: URL | undefined;
  try {
    target = location === undefined ? undefined : new URL(location, requested);
  } catch {
    target = undefined;
  }
  if (!target) return 'redirected elsewhere: not followed (the token goes only to providers.gitlab.url)';
  const where = `redirected to ${target.origin}${target.pathname}: not followed (the token goes only to providers.gitlab.url)`;
  // Only a move of the API itself says where the instance is now (not a sign-in page).
  const apiAt = target.pathname.indexOf('/api/v4/');
  return apiAt < 0
    ? where
    : `${where}; set providers.gitlab.url to ${target.origin}${target.pathname.slice(0, apiAt)}`;
}

/** GitLab answers `{"message": …}` or `{"error": …}`; its proxy answers HTML. */
function gitlabMessage(text: string, status: number): string {
  try {
    const parsed = JSON.parse(text) as { message?: unknown; error?: unknown };
    const message = parsed.message ?? parsed.error;
    if (message !== undefined) return typeof message === 'string' ? message : JSON.stringify(message);
  } catch {
    // Not JSON.
  }
  return `HTTP ${status}`;
}

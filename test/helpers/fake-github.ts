import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: unknown;
  /** When it arrived (ms since the epoch). */
  at: number;
}

export interface FakeProvider {
  url: string;
  requests: RecordedRequest[];
  /**
   * Makes the next `count` requests answer with this status (e.g. 502) before the normal
   * answer, with these headers (rate limits: `retry-after`, `x-ratelimit-*`) and message.
   */
  failNext(count: number, status: number, options?: FailureOptions): void;
  /** Resolves once at least `count` requests arrived, or rejects at the deadline. */
  waitForRequests(count: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  /** Holds every answer this long (a slow provider), so concurrent requests overlap. */
  delayAnswers(ms: number): void;
  /** The most requests the server held unanswered at once. */
  readonly maxInFlight: number;
  /** The requests that arrived and are not answered yet. */
  readonly inFlight: number;
  close(): Promise<void>;
}

export interface FailureOptions {
  headers?: Record<string, string>;
  message?: string;
}

export type Handler = (request: RecordedRequest, res: ServerResponse) => void;

/** A loopback HTTP server that records every request and answers with `handler`. */
export async function startFakeProvider(handler: Handler): Promise<FakeProvider> {
  const requests: RecordedRequest[] = [];
  const waiters: (() => void)[] = [];
  let failures: { count: number; status: number; options: FailureOptions } = {
    count: 0,
    status: 500,
    options: {},
  };
  let delayMs = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.on('close', () => (inFlight -= 1));
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => void answer());
    const answer = async (): Promise<void> => {
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      const text = Buffer.concat(chunks).toString('utf8');
      const contentType = req.headers['content-type'] ?? '';
      let body: unknown = text;
      if (contentType.includes('json') && text !== '') body = JSON.parse(text);
      else if (contentType.includes('x-www-form-urlencoded'))
        body = Object.fromEntries(new URLSearchParams(text));
      const recorded = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body,
        at: Date.now(),
      };
      requests.push(recorded);
      waiters.splice(0).forEach((wake) => wake());
      if (failures.count > 0) {
        failures.count -= 1;
        res
          .writeHead(failures.status, { 'content-type': 'application/json', ...failures.options.headers })
          .end(JSON.stringify({ message: failures.options.message ?? 'unavailable' }));
        return;
      }
      handler(recorded, res);
    };
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    failNext(count, status, options = {}) {
      failures = { count, status, options };
    },
    delayAnswers(ms) {
      delayMs = ms;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    get inFlight() {
      return inFlight;
    },
    async waitForRequests(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (requests.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`expected ${count} requests, got ${requests.length}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const GITHUB_STATES = ['error', 'failure', 'pending', 'success'];

/**
 * GitHub's REST API for commit statuses, as documented: `POST /repos/{owner}/{repo}/statuses/{sha}`
 * answers 201 with the status object. It refuses what GitHub refuses: no token or an unknown
 * one (401), a state
 * outside its four (422), a description over 140 characters (422), and more than
 * `maxStatusesPerContext` (GitHub: 1,000) statuses on one commit and context (422). Anything
 * else is a 404 like GitHub's.
 */
export function startFakeGithub(
  options: {
    maxStatusesPerContext?: number;
    /** The tokens GitHub knows; any other gets 401 "Bad credentials" (default: any token). */
    acceptsToken?: (token: string) => boolean;
  } = {},
): Promise<FakeProvider> {
  const cap = options.maxStatusesPerContext ?? 1000;
  const perContext = new Map<string, number>();
  let nextId = 1;
  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
  };
  return startFakeProvider((request, res) => {
    const match = /^\/repos\/([^/]+)\/([^/]+)\/statuses\/([0-9a-f]{40})$/.exec(request.path);
    if (request.method !== 'POST' || !match) return json(res, 404, { message: 'Not Found' });
    if (!/^(token|Bearer) \S+$/.test(request.headers.authorization ?? ''))
      return json(res, 401, { message: 'Requires authentication' });
    const token = (request.headers.authorization ?? '').replace(/^(token|Bearer) /, '');
    if (options.acceptsToken && !options.acceptsToken(token))
      return json(res, 401, { message: 'Bad credentials' });
    const body = request.body as {
      state: string;
      target_url?: string;
      description?: string;
      context?: string;
    };
    if (!GITHUB_STATES.includes(body.state))
      return json(res, 422, { message: 'Validation Failed', errors: [{ field: 'state', code: 'invalid' }] });
    if ((body.description ?? '').length > 140)
      return json(res, 422, {
        message: 'Validation Failed',
        errors: [{ message: 'description is too long (maximum is 140 characters)' }],
      });
    const context = body.context ?? 'default';
    const key = `${match[1]}/${match[2]}@${match[3]}#${context}`;
    const count = perContext.get(key) ?? 0;
    if (count >= cap)
      return json(res, 422, {
        message: 'Validation Failed',
        errors: [{ message: 'This SHA and context has reached the maximum number of statuses.' }],
      });
    perContext.set(key, count + 1);
    const now = new Date().toISOString();
    const id = nextId++;
    json(res, 201, {
      url: `https://api.github.com/repos/${match[1]}/${match[2]}/statuses/${match[3]}`,
      id,
      node_id: `SC_${id}`,
      state: body.state,
      description: body.description ?? null,
      target_url: body.target_url ?? null,
      context,
      created_at: now,
      updated_at: now,
      creator: { login: 'pushgate-bot', id: 1, type: 'Bot' },
    });
  });
}

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { readSecrets } from '../../src/config/secrets.js';
import { createLogger, silentLogger } from '../../src/lib/logger.js';
import { createMetrics, type Metrics } from '../../src/lib/metrics.js';
import { createKeys } from '../../src/queue/keys.js';
import { JobStore } from '../../src/status/job-store.js';
import {
  CommitStatusReporter,
  createCommitStatusReporter,
  statusBaseUrl,
  type CreateReporterOptions,
} from '../../src/status/reporters/commit-status-reporter.js';
import { REOFFER_AFTER_GIVE_UP_MS, StatusOutbox } from '../../src/status/reporters/status-outbox.js';
import type { CommitStatusSender, CommitStatusUpdate } from '../../src/status/reporters/types.js';
import type { FakeProvider } from '../helpers/fake-github.js';
import { startFakeGithub } from '../helpers/fake-github.js';
import { startFakeGitlab } from '../helpers/fake-gitlab.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';

const SHA = '0123456789abcdef0123456789abcdef01234567';

let redis: TestRedis;
let client: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client.disconnect();
  await redis.stop();
});

function configFor(
  providerUrls: { github: string; gitlab: string },
  prefix: string,
  server = '{ port: 8080, publicUrl: "https://deploy.example.com/pushgate" }',
) {
  return parseConfigText(
    `
server: ${server}
redis: { prefix: ${prefix}, url: "${redis.url}" }
providers:
  github: { apiUrl: "${providerUrls.github}" }
  gitlab: { url: "${providerUrls.gitlab}" }
clusters: [{ name: local }]
environments:
  - name: production
    repo: { provider: github, name: acme/env-config, url: "file:///nowhere" }
    branch: env/production
    cluster: local
  - name: staging
    repo: { provider: gitlab, name: acme/platform/env-config, url: "file:///nowhere" }
    branch: env/staging
    cluster: local
`,
    'test.yaml',
    {},
  );
}

/** Polls until `check` holds, or fails at the deadline. */
async function eventually<T>(
  read: () => T | Promise<T>,
  check: (value: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`not reached within ${timeoutMs} ms: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('commit status reporters (local servers speaking the providers’ documented API, real Redis)', () => {
  const servers: FakeProvider[] = [];
  const reporters: CommitStatusReporter[] = [];
  afterEach(async () => {
    await Promise.all(reporters.splice(0).map((reporter) => reporter.close()));
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  async function setup(options: CreateReporterOptions = {}, server?: string, logger = silentLogger()) {
    const github = await startFakeGithub();
    const gitlab = await startFakeGitlab();
    servers.push(github, gitlab);
    const prefix = uniquePrefix('reporters');
    const config = configFor({ github: github.url, gitlab: gitlab.url }, prefix, server);
    const secrets = readSecrets({ GITHUB_TOKEN: 'ghs_statustoken', GITLAB_TOKEN: 'glpat-statustoken' });
    const metrics = createMetrics();
    /** Another worker process: its own reporter and Redis connection, the same outbox. */
    const newReporter = (more: CreateReporterOptions = {}) => {
      const reporter = createCommitStatusReporter(config, secrets, logger, {
        timeoutMs: 10_000,
        retryBaseMs: 20,
        pollIntervalMs: 50,
        metrics,
        ...options,
        ...more,
      });
      reporters.push(reporter);
      return reporter;
    };
    const reporter = newReporter();
    const env = (name: string) => config.environments.find((e) => e.name === name)!;
    const update = (
      name: string,
      state: CommitStatusUpdate['state'],
      description: string,
      jobId = 'j-1',
    ) => ({
      environment: env(name),
      sha: SHA,
      state,
      description,
      jobId,
    });
    const key = (name: string) => createKeys(prefix).commitStatus(name, SHA);
    const outbox = (name: string) => client.hgetall(key(name));
    const leaseKey = (name: string) => createKeys(prefix).commitStatusLease(name, SHA);
    const store = new JobStore(client, createKeys(prefix));
    return { github, gitlab, reporter, newReporter, env, update, outbox, key, leaseKey, metrics, store };
  }

  const states = (provider: FakeProvider) =>
    provider.requests.map((r) => (r.body as { state: string }).state);
  const counted = async (metrics: Metrics, outcome: string) =>
    (await metrics.commitStatuses.get()).values
      .filter((value) => value.labels.outcome === outcome)
      .reduce((sum, value) => sum + value.value, 0);

  it('posts pending then success to GitHub with context, target URL and token', async () => {
    const { github, reporter, update } = await setup();

    reporter.report(update('production', 'pending', 'Deploying'));
    await reporter.flush();
    reporter.report(update('production', 'success', 'Deployed: 3 objects'));
    await reporter.flush();

    expect(github.requests.map((r) => [r.method, r.path])).toEqual([
      ['POST', `/repos/acme/env-config/statuses/${SHA}`],
      ['POST', `/repos/acme/env-config/statuses/${SHA}`],
    ]);
    expect(github.requests.map((r) => r.body)).toEqual([
      {
        state: 'pending',
        context: 'pushgate/production',
        target_url: 'https://deploy.example.com/pushgate/jobs/j-1',
        description: 'Deploying',
      },
      {
        state: 'success',
        context: 'pushgate/production',
        target_url: 'https://deploy.example.com/pushgate/jobs/j-1',
        description: 'Deployed: 3 objects',
      },
    ]);
    expect(github.requests[0]!.headers.authorization).toBe('token ghs_statustoken');
  });

  it('starts a request’s timeout once the provider’s client is loaded: a slow first load is not a timeout', async () => {
    const prefix = uniquePrefix('reporters');
    const config = configFor({ github: 'http://127.0.0.1:9', gitlab: 'http://127.0.0.1:9' }, prefix);
    // Loaded on first use, as the real senders are, and slower than the request timeout (a
    // cold import on a starved CPU). A request the timeout aborts would be sent again.
    let loaded: Promise<void> | undefined;
    const sends: { state: string; abortedBeforeSent: boolean }[] = [];
    const sender: CommitStatusSender = {
      ready: () => (loaded ??= new Promise((resolve) => setTimeout(resolve, 600))),
      async send(delivery, signal) {
        await sender.ready!();
        sends.push({ state: delivery.state, abortedBeforeSent: signal.aborted });
        signal.throwIfAborted();
      },
    };
    const outbox = new StatusOutbox(client, createKeys(prefix));
    const reporter = new CommitStatusReporter(
      { github: sender },
      statusBaseUrl(config),
      outbox,
      silentLogger(),
      {
        timeoutMs: 200,
        retryBaseMs: 20,
        pollIntervalMs: 50,
      },
    );
    reporters.push(reporter);

    const production = config.environments.find((environment) => environment.name === 'production')!;
    reporter.report({
      environment: production,
      sha: SHA,
      state: 'pending',
      description: 'Deploying',
      jobId: 'j-1',
    });
    expect(await reporter.flush()).toBe(true);

    expect(sends).toEqual([{ state: 'pending', abortedBeforeSent: false }]);
  });

  it('links to the status URL the job was answered with, else to the receiver’s base (SPEC §4)', async () => {
    const { github, gitlab, reporter, update } = await setup(
      undefined,
      '{ port: 8080, publicUrl: "https://x.example.com/pushgate?a=b#top" }',
    );
    const answered = 'http://pushgate.internal:8080/jobs/j-9';
    reporter.report({ ...update('production', 'pending', 'Deploying', 'j-9'), statusUrl: answered });
    reporter.report(update('staging', 'pending', 'Deploying', 'j-10'));
    await reporter.flush();

    expect(github.requests).toHaveLength(1);
    expect(github.requests[0]!.body).toMatchObject({ target_url: answered });
    expect(gitlab.requests).toHaveLength(1);
    // The receiver's base (publicUrlBase): query and fragment dropped, the path kept.
    expect(gitlab.requests[0]!.body).toMatchObject({
      name: 'pushgate/staging',
      target_url: 'https://x.example.com/pushgate/jobs/j-10',
    });
  });

  it('reports a superseded commit to GitHub as success naming the newer commit', async () => {
    const { github, reporter, update } = await setup();

    reporter.report(update('production', 'superseded', 'Superseded by abcdef1'));
    await reporter.flush();

    expect(github.requests[0]!.body).toMatchObject({
      state: 'success',
      description: 'Superseded by abcdef1',
    });
  });

  it('reports a deploy whose health check a newer commit canceled as GitHub error and GitLab canceled, never replaced by a later superseded', async () => {
    const { github, gitlab, reporter, update } = await setup();

    reporter.report(update('production', 'pending', 'Deploying'));
    reporter.report(update('staging', 'pending', 'Deploying'));
    await reporter.flush();
    reporter.report(update('production', 'canceled', 'Applied; health check canceled'));
    reporter.report(update('staging', 'canceled', 'Applied; health check canceled'));
    await reporter.flush();
    // An earlier job's late word on the same commit: the deploy's own verdict stands.
    reporter.report(update('production', 'superseded', 'Superseded by abcdef1', 'j-0'));
    await reporter.flush();

    expect(states(github)).toEqual(['pending', 'error']);
    expect(states(gitlab)).toEqual(['pending', 'canceled']);
  });

  it('posts to GitLab with the URL-encoded project path, the branch as ref, running then failed', async () => {
    const { gitlab, reporter, update } = await setup();

    reporter.report(update('staging', 'pending', 'Deploying'));
    await reporter.flush();
    reporter.report(update('staging', 'failure', 'web.yaml: bad'));
    await reporter.flush();

    expect(gitlab.requests.map((r) => [r.method, r.path])).toEqual([
      ['POST', `/api/v4/projects/acme%2Fplatform%2Fenv-config/statuses/${SHA}`],
      ['POST', `/api/v4/projects/acme%2Fplatform%2Fenv-config/statuses/${SHA}`],
    ]);
    expect(gitlab.requests.map((r) => r.body)).toEqual([
      {
        state: 'pending',
        name: 'pushgate/staging',
        ref: 'env/staging',
        target_url: 'https://deploy.example.com/pushgate/jobs/j-1',
        description: 'Deploying',
      },
      {
        state: 'failed',
        name: 'pushgate/staging',
        ref: 'env/staging',
        target_url: 'https://deploy.example.com/pushgate/jobs/j-1',
        description: 'web.yaml: bad',
      },
    ]);
    expect(gitlab.requests[0]!.headers['private-token']).toBe('glpat-statustoken');
  });

  it('never posts the same GitLab state twice: a retried job’s second start is not sent', async () => {
    const { gitlab, reporter, update, outbox } = await setup();

    reporter.report(update('staging', 'pending', 'Deploying (attempt 1)'));
    await reporter.flush();
    reporter.report(update('staging', 'pending', 'Deploying (attempt 2)'));
    await reporter.flush();
    reporter.report(update('staging', 'success', 'Deployed'));
    await reporter.flush();

    expect(states(gitlab)).toEqual(['pending', 'success']);
    expect(gitlab.requests.every((r) => (r.body as { ref: string }).ref === 'env/staging')).toBe(true);
    expect(await outbox('staging')).toMatchObject({ deliveredState: 'success', state: 'success' });
  });

  it('sends a GitLab status without a link GitLab would refuse (over 255 characters)', async () => {
    const { gitlab, reporter, update } = await setup();

    reporter.report({
      ...update('staging', 'pending', 'Deploying'),
      statusUrl: `https://x.example.com/${'a'.repeat(240)}`,
    });
    await reporter.flush();

    expect(gitlab.requests).toHaveLength(1);
    expect(gitlab.requests[0]!.body).not.toHaveProperty('target_url');
  });

  it('retries a burst of 503s until the status is delivered', async () => {
    const { github, reporter, update, outbox, metrics } = await setup();
    github.failNext(4, 503);

    reporter.report(update('production', 'success', 'Deployed'));
    expect(await reporter.flush()).toBe(true);

    expect(states(github)).toEqual(['success', 'success', 'success', 'success', 'success']);
    expect(await outbox('production')).toMatchObject({ deliveredState: 'success', failures: '0' });
    expect(await counted(metrics, 'retried')).toBe(4);
    expect(await counted(metrics, 'delivered')).toBe(1);
  });

  it('a result offered while the pending before it is out, and then refused, goes out at once, not after the pending’s backoff', async () => {
    // A backoff long enough to tell apart from "at once".
    const { github, reporter, update } = await setup({ retryBaseMs: 10_000 });
    github.delayAnswers(500);
    github.failNext(1, 502);
    reporter.report(update('production', 'pending', 'Deploying'));
    // The pending is out (its request at the provider, unanswered) when the deploy ends. (Its
    // commit's lease comes before the read of what to send: an offer then is what goes out.)
    for (const deadline = Date.now() + 5_000; github.inFlight === 0;) {
      if (Date.now() > deadline) throw new Error('the pending was never sent');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    reporter.report(update('production', 'success', 'Deployed'));
    expect(await reporter.flush()).toBe(true);

    expect(states(github)).toEqual(['pending', 'success']);
    const [pending, success] = github.requests;
    expect(success!.at - pending!.at).toBeLessThan(5_000);
  });

  it('waits out GitHub’s secondary rate limit (403 with retry-after) before trying again', async () => {
    const { github, reporter, update } = await setup();
    github.failNext(1, 403, {
      headers: { 'retry-after': '1' },
      message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
    });

    reporter.report(update('production', 'failure', 'Deploy failed'));
    expect(await reporter.flush()).toBe(true);

    expect(states(github)).toEqual(['failure', 'failure']);
    const times = github.requests.map((r) => r.at);
    // The backoff alone (20 ms) would have retried at once: retry-after (1 s) rules.
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(950);
  });

  it('holds back every status to a provider that answered with a rate limit, not only the one refused', async () => {
    const { github, reporter, update, outbox } = await setup();
    github.failNext(1, 403, {
      headers: { 'retry-after': '1' },
      message: 'You have exceeded a secondary rate limit.',
    });
    reporter.report(update('production', 'success', 'Deployed'));
    // Once the reporter has read the answer (a status offered while it is on its way goes out).
    await eventually(
      () => outbox('production'),
      (hash) => hash.failures === '1',
    );

    const other = 'fedcba9876543210fedcba9876543210fedcba98';
    reporter.report({ ...update('production', 'success', 'Deployed'), sha: other });
    expect(await reporter.flush()).toBe(true);

    const first = github.requests[0]!.at;
    const toOther = github.requests.find((r) => r.path.endsWith(other))!;
    expect(toOther.at - first).toBeGreaterThanOrEqual(950);
  });

  it('while a provider is rate-limited, a backlog waits quietly: no busy loop, no burst, the other provider unhindered', async () => {
    const { github, gitlab, reporter, update } = await setup();
    github.failNext(1, 403, {
      headers: { 'retry-after': '30' },
      message: 'You have exceeded a secondary rate limit.',
    });
    reporter.report(update('production', 'success', 'Deployed'));
    await github.waitForRequests(1);
    // More than one page of due statuses to the limited provider, then one to the other.
    for (let n = 0; n < 60; n++)
      reporter.report({
        ...update('production', 'success', 'Deployed'),
        sha: n.toString(16).padStart(40, 'a'),
      });
    reporter.report(update('staging', 'success', 'Deployed'));

    await gitlab.waitForRequests(1);
    const reads = async () => {
      const stats = await client.info('commandstats');
      return Number(/cmdstat_hgetall:calls=(\d+)/.exec(stats)?.[1] ?? 0);
    };
    const before = await reads();
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // a window to count Redis reads in
    // A poll or two (each reads nothing due: the backlog waits for the limit's end), not a spin.
    expect((await reads()) - before).toBeLessThan(50);
    expect(github.requests).toHaveLength(1);
  });

  it('a slow provider holds back only its own statuses: the other provider’s go out at once', async () => {
    const { github, gitlab, reporter, update } = await setup();
    github.delayAnswers(1_500);
    for (let n = 0; n < 6; n++)
      reporter.report({
        ...update('production', 'success', 'Deployed'),
        sha: n.toString(16).padStart(40, 'c'),
      });
    await github.waitForRequests(1);

    const offered = Date.now();
    reporter.report(update('staging', 'success', 'Deployed'));
    const [toGitlab] = await gitlab.waitForRequests(1);

    expect(toGitlab!.at - offered).toBeLessThan(1_000);
    expect(await reporter.flush()).toBe(true);
    expect(github.maxInFlight).toBeLessThanOrEqual(2);
  });

  it('logs the first failure of each status at warn, though an earlier status of the commit failed before', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: 'warn',
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    });
    const { github, reporter, update } = await setup({}, undefined, logger);
    github.failNext(2, 503);
    reporter.report(update('production', 'pending', 'Deploying'));
    await github.waitForRequests(1);
    reporter.report(update('production', 'success', 'Deployed'));

    expect(await reporter.flush()).toBe(true);

    expect(states(github).at(-1)).toBe('success');
    const retried = lines.filter((line) => line.msg === 'commit status not delivered: will retry');
    expect(retried.map((line) => line.state)).toEqual(['pending', 'success']);
  });

  it('a commit another worker is sending waits for the next poll, not a busy loop of lease attempts', async () => {
    const { github, reporter, update, leaseKey } = await setup({ pollIntervalMs: 1_000 });
    // Another worker holds the commit's lease: it is sending this commit's status.
    await client.set(leaseKey('production'), 'other-worker', 'PX', 10_000);
    reporter.report(update('production', 'success', 'Deployed'));
    const leaseAttempts = async () =>
      Number(/cmdstat_set:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0);
    await new Promise((resolve) => setTimeout(resolve, 200));

    const before = await leaseAttempts();
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // a window to count attempts in

    expect((await leaseAttempts()) - before).toBeLessThan(10);
    expect(github.requests).toHaveLength(0);
  });

  it('sends a backlog a few at a time, not as one burst', async () => {
    const { github, reporter, update } = await setup();
    github.delayAnswers(100);
    for (let n = 0; n < 6; n++)
      reporter.report({
        ...update('production', 'success', 'Deployed'),
        sha: n.toString(16).padStart(40, 'b'),
      });

    expect(await reporter.flush()).toBe(true);

    expect(github.requests).toHaveLength(6);
    expect(github.maxInFlight).toBeLessThanOrEqual(2);
  });

  it('sends one GitLab request per attempt and honours its Retry-After (no client-side retry storm)', async () => {
    const { gitlab, reporter, update } = await setup();
    gitlab.failNext(1, 429, { headers: { 'retry-after': '1', 'ratelimit-remaining': '0' } });

    reporter.report(update('staging', 'success', 'Deployed'));
    expect(await reporter.flush()).toBe(true);

    expect(states(gitlab)).toEqual(['success', 'success']);
    const times = gitlab.requests.map((r) => r.at);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(950);
  });

  it('only the newest status of a commit is sent: a stale pending from another worker never lands after success', async () => {
    const { github, reporter, newReporter, update } = await setup();
    const workerB = newReporter();
    // Worker A's start of attempt 1 meets a 502; meanwhile worker B ran attempt 2 to its end.
    github.failNext(1, 502);
    reporter.report(update('production', 'pending', 'Deploying (worker A, attempt 1)'));
    await github.waitForRequests(1);
    workerB.report(update('production', 'pending', 'Deploying (worker B, attempt 2)'));
    workerB.report(update('production', 'success', 'Deployed (worker B)'));
    await workerB.flush();
    // And worker A, frozen a while, offers its start only now.
    reporter.report(update('production', 'pending', 'Deploying (worker A, attempt 1)'));
    await reporter.flush();

    const last = github.requests.at(-1)!.body as { state: string; description: string };
    expect(last).toMatchObject({ state: 'success', description: 'Deployed (worker B)' });
    expect(
      github.requests.slice(1).map((r) => (r.body as { description: string }).description),
    ).not.toContain('Deploying (worker A, attempt 1)');
  });

  it('leaves what a stopped worker could not deliver in the outbox, and another worker delivers it', async () => {
    const { github, reporter, newReporter, update, outbox } = await setup({ retryBaseMs: 200 });
    github.failNext(1_000, 503);
    reporter.report(update('production', 'success', 'Deployed'));
    await github.waitForRequests(1);
    expect(await reporter.flush(100)).toBe(false);
    await reporter.close();
    github.failNext(0, 503);

    newReporter();

    await eventually(
      () => outbox('production'),
      (hash) => hash.deliveredState === 'success',
    );
    expect(states(github).at(-1)).toBe('success');
  });

  it('gives up at once on an answer that asking again will not change, and says so in the outbox and the log', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: 'warn',
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    });
    const { github, reporter, update, outbox, metrics, store } = await setup({}, undefined, logger);
    github.failNext(5, 404, { message: 'Not Found' });

    expect(() => reporter.report(update('production', 'pending', 'Deploying'))).not.toThrow();
    expect(await reporter.flush()).toBe(true);

    expect(github.requests).toHaveLength(1);
    expect(await outbox('production')).toMatchObject({ gaveUpSeq: '1', lastHttpStatus: '404' });
    expect(await counted(metrics, 'failed')).toBe(1);
    expect(await store.commitStatus('production', SHA)).toEqual({
      state: 'pending',
      delivered: false,
      error: 'given up: Not Found',
    });
    // A job's line like every other: its id and environment, never the token.
    expect(lines.find((line) => line.msg === 'commit status not reported: given up')).toMatchObject({
      jobId: 'j-1',
      environment: 'production',
      httpStatus: '404',
    });
    expect(JSON.stringify(lines)).not.toContain('ghs_statustoken');
  });

  it('tries GitLab’s 409 again (another status of the commit being written), and the status lands', async () => {
    const { gitlab, reporter, update, outbox } = await setup();
    gitlab.failNext(1, 409, { message: 'Another update to this commit status is in progress' });

    reporter.report(update('staging', 'pending', 'Deploying'));
    expect(await reporter.flush()).toBe(true);

    expect(states(gitlab)).toEqual(['pending', 'pending']);
    expect(await outbox('staging')).toMatchObject({ deliveredState: 'pending' });
  });

  it('a quiet re-sync offers a status given up over an hour before (a token or permission fixed since), once', async () => {
    const { github, reporter, update, outbox, key } = await setup();
    github.failNext(1, 422, { message: 'Validation Failed' });
    reporter.report(update('production', 'success', 'Deployed'));
    expect(await reporter.flush()).toBe(true);
    expect(await outbox('production')).toMatchObject({ gaveUpSeq: '1', lastHttpStatus: '422' });

    // Within the hour: nothing sent, so a refusal that stands costs one request an hour at most.
    reporter.report({ ...update('production', 'success', 'Deployed', 'j-2'), quiet: true });
    expect(await reporter.flush()).toBe(true);
    expect(states(github)).toEqual(['success']);

    await client.hset(key('production'), 'gaveUpAt', String(Date.now() - REOFFER_AFTER_GIVE_UP_MS - 1));
    reporter.report({ ...update('production', 'success', 'Deployed', 'j-3'), quiet: true });
    expect(await reporter.flush()).toBe(true);
    expect(await outbox('production')).toMatchObject({ deliveredState: 'success', deliveredSeq: '2' });

    reporter.report({ ...update('production', 'success', 'Deployed', 'j-4'), quiet: true });
    expect(await reporter.flush()).toBe(true);
    expect(states(github)).toEqual(['success', 'success']);
  });

  it('follows no redirect of GitLab’s API with the token: gives the status up, naming where to point providers.gitlab.url', async () => {
    const elsewhere = await startFakeGitlab();
    servers.push(elsewhere);
    let status = 301;
    let location = (path: string) => `${elsewhere.url}${path}`;
    const redirecting = createServer((request, response) => {
      request.resume();
      response.writeHead(status, { location: location(request.url ?? '/') }).end();
    });
    await new Promise<void>((resolve) => redirecting.listen(0, '127.0.0.1', resolve));
    const { port } = redirecting.address() as AddressInfo;
    try {
      const prefix = uniquePrefix('redirect');
      const config = configFor({ github: elsewhere.url, gitlab: `http://127.0.0.1:${port}` }, prefix);
      const reporter = createCommitStatusReporter(
        config,
        readSecrets({ GITLAB_TOKEN: 'glpat-statustoken' }),
        silentLogger(),
        { retryBaseMs: 20, pollIntervalMs: 50 },
      );
      reporters.push(reporter);
      const environment = config.environments.find((e) => e.name === 'staging')!;
      for (const [index, answer] of [301, 307, 308].entries()) {
        status = answer;
        const sha = String(index + 1).repeat(40);
        reporter.report({
          environment,
          sha,
          state: 'pending',
          description: 'Deploying',
          jobId: `j-${answer}`,
        });
        expect(await reporter.flush()).toBe(true);
        const hash = await client.hgetall(createKeys(prefix).commitStatus('staging', sha));
        expect(hash).toMatchObject({ gaveUpSeq: '1', lastHttpStatus: String(answer) });
        expect(hash.lastError).toBe(
          `redirected to ${elsewhere.url}/api/v4/projects/acme%2Fplatform%2Fenv-config/statuses/${sha}: not followed (the token goes only to providers.gitlab.url); set providers.gitlab.url to ${elsewhere.url}`,
        );
      }
      // A redirect to a sign-in page says nothing of where the API is.
      location = () => `${elsewhere.url}/users/sign_in`;
      status = 302;
      const sha = 'f'.repeat(40);
      reporter.report({ environment, sha, state: 'pending', description: 'Deploying', jobId: 'j-302' });
      expect(await reporter.flush()).toBe(true);
      expect((await client.hgetall(createKeys(prefix).commitStatus('staging', sha))).lastError).toBe(
        `redirected to ${elsewhere.url}/users/sign_in: not followed (the token goes only to providers.gitlab.url)`,
      );
      expect(elsewhere.requests).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => redirecting.close(() => resolve()));
    }
  });

  it('gives up a status that keeps failing once the give-up time has passed', async () => {
    const { github, reporter, update, outbox } = await setup({ giveUpAfterMs: 300 });
    github.failNext(1_000, 500);

    reporter.report(update('production', 'pending', 'Deploying'));
    expect(await reporter.flush()).toBe(true);

    expect(github.requests.length).toBeGreaterThan(1);
    expect(await outbox('production')).toMatchObject({ gaveUpSeq: '1', lastHttpStatus: '500' });
  });

  it('keeps a status GitHub refused the token for (401) and sends it once the token file holds a valid one', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pushgate-token-'));
    try {
      const github = await startFakeGithub({ acceptsToken: (token) => token === 'ghs_new' });
      servers.push(github);
      const file = path.join(dir, 'github-token');
      await writeFile(file, 'ghs_revoked\n');
      const config = configFor({ github: github.url, gitlab: github.url }, uniquePrefix('token-refused'));
      const metrics = createMetrics();
      const reporter = createCommitStatusReporter(
        config,
        readSecrets({ GITHUB_TOKEN_FILE: file }),
        silentLogger(),
        // A backoff (5 s) longer than the pause: a refused token's status is tried when the pause ends.
        { pollIntervalMs: 50, retryBaseMs: 5_000, credentialsRetryMs: 1_000, metrics },
      );
      reporters.push(reporter);
      const environment = config.environments.find((e) => e.name === 'production')!;
      const other = 'fedcba9876543210fedcba9876543210fedcba98';

      reporter.report({ environment, sha: SHA, state: 'success', description: 'Deployed', jobId: 'j-1' });
      await github.waitForRequests(1);
      // Refused for the token: the provider's other statuses wait too, rather than each being refused.
      reporter.report({ environment, sha: other, state: 'success', description: 'Deployed', jobId: 'j-2' });
      await writeFile(file, 'ghs_new\n');
      expect(await reporter.flush()).toBe(true);

      const answered = github.requests.map((r) => [r.path.slice(-40), r.headers.authorization]);
      expect(answered[0]).toEqual([SHA, 'token ghs_revoked']);
      expect(answered.slice(1).sort()).toEqual([
        [SHA, 'token ghs_new'],
        [other, 'token ghs_new'],
      ]);
      const [refused, retried] = github.requests.filter((r) => r.path.endsWith(SHA));
      const retriedAfter = retried!.at - refused!.at;
      expect(retriedAfter).toBeGreaterThanOrEqual(950);
      expect(retriedAfter).toBeLessThan(4_000);
      // Counted apart from other retries: it takes a person, and alerts (deploy/prometheus).
      expect(await counted(metrics, 'unauthorized')).toBe(1);
      expect(await counted(metrics, 'failed')).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a token file still empty at start is read again, and its statuses sent once a sidecar writes it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pushgate-token-'));
    try {
      const github = await startFakeGithub();
      servers.push(github);
      const file = path.join(dir, 'github-token');
      await writeFile(file, '');
      const lines: Record<string, unknown>[] = [];
      const logger = createLogger({
        level: 'warn',
        destination: {
          write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>),
        },
      });
      const config = configFor({ github: github.url, gitlab: github.url }, uniquePrefix('token-empty'));
      const reporter = createCommitStatusReporter(config, readSecrets({ GITHUB_TOKEN_FILE: file }), logger, {
        pollIntervalMs: 50,
        retryBaseMs: 50,
      });
      reporters.push(reporter);
      expect(lines.map((line) => line.msg)).toContain(
        `GITHUB_TOKEN_FILE: ${file} is empty: its commit statuses are retried until it holds a token`,
      );
      const environment = config.environments.find((e) => e.name === 'production')!;

      reporter.report({ environment, sha: SHA, state: 'success', description: 'Deployed', jobId: 'j-1' });
      await eventually(
        () => lines.some((line) => line.msg === 'commit status not delivered: will retry'),
        Boolean,
      );
      expect(github.requests).toHaveLength(0);
      expect(lines.find((line) => line.msg === 'commit status not delivered: will retry')?.err).toBe(
        `GITHUB_TOKEN_FILE: ${file} holds no token yet`,
      );
      await writeFile(file, 'ghs_late\n');
      expect(await reporter.flush()).toBe(true);

      expect(github.requests.map((r) => r.headers.authorization)).toEqual(['token ghs_late']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads a token file again at each send (a rotated token needs no restart)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pushgate-token-'));
    try {
      const github = await startFakeGithub();
      servers.push(github);
      const file = path.join(dir, 'github-token');
      await writeFile(file, 'ghs_first\n');
      const config = configFor({ github: github.url, gitlab: github.url }, uniquePrefix('token-file'));
      const reporter = createCommitStatusReporter(
        config,
        readSecrets({ GITHUB_TOKEN_FILE: file }),
        silentLogger(),
        {
          pollIntervalMs: 50,
        },
      );
      reporters.push(reporter);
      const environment = config.environments.find((e) => e.name === 'production')!;

      reporter.report({ environment, sha: SHA, state: 'pending', description: 'Deploying', jobId: 'j-1' });
      await reporter.flush();
      await writeFile(file, 'ghs_rotated\n');
      reporter.report({ environment, sha: SHA, state: 'success', description: 'Deployed', jobId: 'j-1' });
      await reporter.flush();

      expect(github.requests.map((r) => r.headers.authorization)).toEqual([
        'token ghs_first',
        'token ghs_rotated',
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

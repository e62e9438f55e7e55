import { afterEach, describe, expect, it } from 'vitest';
import { startFakeGithub, type FakeProvider } from '../helpers/fake-github.js';
import { startFakeGitlab } from '../helpers/fake-gitlab.js';

const SHA = '0123456789abcdef0123456789abcdef01234567';

/** The fakes refuse what GitHub and GitLab refuse, so tests see what production would. */
describe('provider fakes', () => {
  const servers: FakeProvider[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  const post = (url: string, headers: Record<string, string>, body: unknown) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    }).then(async (response) => ({
      status: response.status,
      body: (await response.json()) as Record<string, unknown>,
    }));

  it('GitHub: no token, an unknown state, a long description and the per-context cap are refused', async () => {
    const github = await startFakeGithub({ maxStatusesPerContext: 2 });
    servers.push(github);
    const url = `${github.url}/repos/acme/env/statuses/${SHA}`;
    const auth = { authorization: 'token ghs_x' };

    expect((await post(url, {}, { state: 'success' })).status).toBe(401);
    expect((await post(url, auth, { state: 'bogus' })).status).toBe(422);
    expect((await post(url, auth, { state: 'success', description: 'x'.repeat(141) })).status).toBe(422);
    expect((await post(url, auth, { state: 'pending', context: 'c' })).status).toBe(201);
    expect((await post(url, auth, { state: 'success', context: 'c' })).status).toBe(201);
    expect((await post(url, auth, { state: 'success', context: 'c' })).status).toBe(422);
    expect((await post(url, auth, { state: 'success', context: 'other' })).status).toBe(201);
  });

  it('GitLab: no token, an unknown state, no ref and an invalid transition are refused; ref is echoed', async () => {
    const gitlab = await startFakeGitlab();
    servers.push(gitlab);
    const url = `${gitlab.url}/api/v4/projects/acme%2Fenv/statuses/${SHA}`;
    const auth = { 'private-token': 'glpat-x' };

    expect((await post(url, {}, { state: 'running', ref: 'main' })).status).toBe(401);
    expect((await post(url, auth, { state: 'bogus', ref: 'main' })).status).toBe(400);
    expect((await post(url, auth, { state: 'running' })).status).toBe(400);
    expect(await post(url, auth, { state: 'pending', ref: 'main', name: 'n' })).toMatchObject({
      status: 201,
      body: { ref: 'main', status: 'pending' },
    });
    expect(await post(url, auth, { state: 'pending', ref: 'main', name: 'n' })).toMatchObject({
      status: 400,
      body: { message: 'Cannot transition status via :enqueue from :pending' },
    });
    expect((await post(url, auth, { state: 'running', ref: 'main', name: 'n' })).status).toBe(201);
    expect((await post(url, auth, { state: 'running', ref: 'main', name: 'n' })).status).toBe(400);
    expect((await post(url, auth, { state: 'success', ref: 'main', name: 'n' })).status).toBe(201);
    // A finished status is not reopened: the next one starts afresh.
    expect((await post(url, auth, { state: 'running', ref: 'main', name: 'n' })).status).toBe(201);
  });

  it('answers injected failures with the rate-limit headers asked for', async () => {
    const github = await startFakeGithub();
    servers.push(github);
    github.failNext(1, 403, {
      headers: { 'retry-after': '60' },
      message: 'You have exceeded a secondary rate limit.',
    });
    const response = await fetch(`${github.url}/repos/acme/env/statuses/${SHA}`, { method: 'POST' });
    expect(response.status).toBe(403);
    expect(response.headers.get('retry-after')).toBe('60');
    expect(await response.json()).toEqual({ message: 'You have exceeded a secondary rate limit.' });
  });
});

import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MirrorCache } from '../../src/git/mirror-cache.js';
import { PushgateError } from '../../src/lib/errors.js';
import type { EnvRepo } from '../helpers/env-repo.js';
import { git } from '../helpers/git.js';
import { createMirrorWorld, type MirrorWorld } from '../helpers/mirror-world.js';

const execFileAsync = promisify(execFile);

describe('git mirror cache (real git over file://)', () => {
  let repo: EnvRepo;
  let cacheDir: string;
  let cache: MirrorCache;

  let world: MirrorWorld;
  beforeEach(async () => {
    ({ repo, cacheDir, cache } = world = await createMirrorWorld());
  });
  afterEach(() => world.remove());

  const source = () => ({ url: repo.url, provider: 'github' as const });

  it('resolves the branch head and checks its tree out into a temporary folder', async () => {
    const sha = await repo.commit({
      'apps/web.yaml': 'kind: ConfigMap\n',
      'apps/nested/db.yaml': 'kind: Secret\n',
    });

    const head = await cache.fetchBranch(source(), repo.branch);
    const tree = await cache.checkout(source(), head);

    expect(head).toBe(sha);
    expect(await readFile(path.join(tree.dir, 'apps/nested/db.yaml'), 'utf8')).toBe('kind: Secret\n');
    await tree.remove();
    await expect(stat(tree.dir)).rejects.toThrow();
  });

  it('fetches incrementally into one mirror and follows a force-push back', async () => {
    const first = await repo.commit({ 'a.yaml': '1' });
    expect(await cache.fetchBranch(source(), repo.branch)).toBe(first);
    const second = await repo.commit({ 'a.yaml': '2' });
    expect(await cache.fetchBranch(source(), repo.branch)).toBe(second);

    await repo.forcePush(first);

    expect(await cache.fetchBranch(source(), repo.branch)).toBe(first);
    expect(await readdir(cacheDir)).toHaveLength(1);
  });

  it('fetches a branch whose ref a deleted branch’s stale ref stands in the way of, both ways round', async () => {
    const sha = await repo.commit({ 'a.yaml': '1' });
    const bare = ['--git-dir', repo.bareDir];
    const moveBranch = async (from: string, to: string) => {
      await git(repo.bareDir, [...bare, 'update-ref', '-d', `refs/heads/${from}`]);
      await git(repo.bareDir, [...bare, 'update-ref', `refs/heads/${to}`, sha]);
    };
    await git(repo.bareDir, [...bare, 'update-ref', 'refs/heads/staging', sha]);
    expect(await cache.fetchBranch(source(), 'staging')).toBe(sha);

    // The server's `staging` became `staging/eu`: the mirror still has `staging` (not pruned,
    // as another branch's ref), where git must make a folder.
    await moveBranch('staging', 'staging/eu');
    expect(await cache.fetchBranch(source(), 'staging/eu')).toBe(sha);

    // Several of them in the way of one branch: each is removed.
    for (const region of ['us', 'ap', 'af']) {
      await git(repo.bareDir, [...bare, 'update-ref', `refs/heads/staging/${region}`, sha]);
      expect(await cache.fetchBranch(source(), `staging/${region}`)).toBe(sha);
      await git(repo.bareDir, [...bare, 'update-ref', '-d', `refs/heads/staging/${region}`]);
    }
    await moveBranch('staging/eu', 'staging');
    expect(await cache.fetchBranch(source(), 'staging')).toBe(sha);
  });

  it('makes a mirror again where a process killed mid-init left part of one', async () => {
    const sha = await repo.commit({ 'a.yaml': '1' });
    // git init writes HEAD first: what a kill right after it leaves.
    const mirror = cache.mirrorDir(repo.url);
    await mkdir(mirror, { recursive: true });
    await writeFile(path.join(mirror, 'HEAD'), 'ref: refs/heads/main\n');
    // And what a kill mid-init leaves now: a folder beside it, removed once stale.
    const aside = `${mirror}.init-left`;
    await mkdir(aside);
    const longAgo = new Date(Date.now() - 7 * 3600_000);
    await utimes(aside, longAgo, longAgo);

    expect(await cache.fetchBranch(source(), repo.branch)).toBe(sha);
    expect(await readdir(cacheDir)).toEqual([path.basename(mirror)]);
  });

  it('fetches only the environment branch', async () => {
    await repo.commit({ 'a.yaml': '1' });
    await git(repo.workDir, ['push', '--quiet', 'origin', 'HEAD:refs/heads/other']);

    await cache.fetchBranch(source(), repo.branch);

    const refs = await git(cache.mirrorDir(repo.url), ['for-each-ref', '--format=%(refname)']);
    expect(refs.split('\n')).toEqual([`refs/heads/${repo.branch}`]);
  });

  it('serialises concurrent fetches of one repository', async () => {
    const sha = await repo.commit({ 'a.yaml': '1' });

    const heads = await Promise.all(
      Array.from({ length: 5 }, () => cache.fetchBranch(source(), repo.branch)),
    );

    expect(new Set(heads)).toEqual(new Set([sha]));
  });

  it('finds an older commit by sha for render --ref, and rejects an unknown one', async () => {
    const old = await repo.commit({ 'a.yaml': '1' });
    await repo.commit({ 'a.yaml': '2' });

    expect(await cache.fetchCommit(source(), repo.branch, old)).toBe(old);
    const tree = await cache.checkout(source(), old);
    expect(await readFile(path.join(tree.dir, 'a.yaml'), 'utf8')).toBe('1');
    await tree.remove();

    await expect(cache.fetchCommit(source(), repo.branch, 'f'.repeat(40))).rejects.toThrow(
      /is not in the repository/,
    );
  });

  it('takes an abbreviated sha of the branch history, as git log --oneline shows it', async () => {
    const old = await repo.commit({ 'a.yaml': '1' });
    await repo.commit({ 'a.yaml': '2' });

    expect(await cache.fetchCommit(source(), repo.branch, old.slice(0, 7).toUpperCase())).toBe(old);
    // No commit of the branch starts with it (its blob or tree may: those are not commits).
    const unknown = old.startsWith('0000000') ? '1111111' : '0000000';
    await expect(cache.fetchCommit(source(), repo.branch, unknown)).rejects.toThrow(
      `no commit ${unknown} in the history of ${repo.branch} fetched from ${repo.url}`,
    );
    await expect(cache.fetchCommit(source(), repo.branch, 'abc')).rejects.toThrow(
      '"abc" is not a commit sha (7 to 40 hex digits)',
    );
  });

  it('does not take an abbreviation for a commit of another branch the mirror holds', async () => {
    const onBranch = await repo.commit({ 'a.yaml': '1' });
    const bare = ['--git-dir', repo.bareDir];
    // Another environment's branch in the same repository, fetched into the same mirror.
    await git(repo.bareDir, [...bare, 'update-ref', 'refs/heads/env/production', onBranch]);
    const elsewhere = await repo.commit({ 'a.yaml': '2' });
    await git(repo.bareDir, [...bare, 'update-ref', 'refs/heads/env/production', elsewhere]);
    await repo.forcePush(onBranch);
    await cache.fetchBranch(source(), 'env/production');

    await expect(cache.fetchCommit(source(), repo.branch, elsewhere.slice(0, 10))).rejects.toThrow(
      `no commit ${elsewhere.slice(0, 10)} in the history of ${repo.branch}`,
    );
    // All 40 digits name any commit of the repository, as the docs say.
    expect(await cache.fetchCommit(source(), repo.branch, elsewhere)).toBe(elsewhere);
  });

  it('fails permanently, naming the branch and the repository, when the branch does not exist', async () => {
    await repo.commit({ 'a.yaml': '1' });

    const error = await cache.fetchBranch(source(), 'env/missing').catch((e: unknown) => e);

    expect(error).toBeInstanceOf(PushgateError);
    expect((error as PushgateError).permanent).toBe(true);
    expect((error as PushgateError).message).toContain(
      `git fetch env/missing from ${repo.url}: fatal: couldn't find remote ref`,
    );
  });

  describe('over HTTPS with GIT_TOKEN', () => {
    let server: Server;
    let seen: { authorization?: string; url?: string }[];
    let url: string;

    beforeEach(async () => {
      seen = [];
      // A server that asks for credentials and records what git sends: the token must arrive
      // once asked for, and must appear neither in argv nor in the error. Answered, it refuses.
      server = createServer((req, res) => {
        seen.push({ authorization: req.headers.authorization, url: req.url });
        if (req.headers.authorization === undefined)
          res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end('who?\n');
        else res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden\n');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      if (!address || typeof address === 'string') throw new Error('no address');
      url = `http://127.0.0.1:${address.port}/acme/env.git`;
    });

    afterEach(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('sends the token to the repository’s host when it asks, and never shows it', async () => {
      const token = 'ghp_supersecrettoken123';
      const withToken = new MirrorCache({ dir: cacheDir, token });

      const error = await withToken.fetchBranch({ url, provider: 'github' }, 'main').catch((e: unknown) => e);

      expect(error).toBeInstanceOf(PushgateError);
      expect(seen.map((request) => request.authorization)).toEqual([
        undefined,
        `Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`,
      ]);
      expect(String((error as Error).message)).not.toContain(token);
      const { stdout: processes } = await execFileAsync('ps', ['-eo', 'args']);
      expect(processes).not.toContain(token);
    });

    it('never sends the token to another host the repository redirects to', async () => {
      // As the audit found with a header scoped to the origin: git follows the first request's
      // redirect and moved on to the new host with the header still set.
      const elsewhere = createServer((req, res) => {
        seen.push({ authorization: req.headers.authorization, url: `elsewhere${req.url}` });
        res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end('who?\n');
      });
      await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
      const { port } = elsewhere.address() as { port: number };
      server.removeAllListeners('request');
      server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        seen.push({ authorization: req.headers.authorization, url: req.url });
        res.writeHead(301, { location: `http://127.0.0.1:${port}${req.url}` }).end();
      });
      const withToken = new MirrorCache({ dir: cacheDir, token: 'ghp_not_for_elsewhere' });

      const error = await withToken
        .fetchBranch({ url, provider: 'github' }, 'main')
        .catch((e: unknown) => e)
        .finally(() => new Promise<void>((resolve) => elsewhere.close(() => resolve())));

      expect(seen.some((request) => request.url?.startsWith('elsewhere'))).toBe(true);
      expect(seen.filter((request) => request.authorization !== undefined)).toEqual([]);
      expect(error).toBeInstanceOf(PushgateError);
      expect((error as PushgateError).message).toContain('could not read Username');
      expect((error as PushgateError).permanent).toBe(true);
    });

    /** The test server answers every request with `status` (401 asks for Basic credentials). */
    function answerWith(status: number): void {
      server.removeAllListeners('request');
      server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        seen.push({ url: req.url });
        res.writeHead(status, status === 401 ? { 'www-authenticate': 'Basic realm="git"' } : {}).end('no\n');
      });
    }

    it('fails a 403 permanently, naming the branch and the repository without its credentials', async () => {
      const withUserinfo = url.replace('http://', 'http://deployer:hunter2@');

      const error = await cache
        .fetchBranch({ url: withUserinfo, provider: 'github' }, 'env/prod')
        .catch((e: unknown) => e);

      expect(error).toBeInstanceOf(PushgateError);
      const { message, permanent } = error as PushgateError;
      expect(message).toContain(`git fetch env/prod from ${url}: `);
      expect(message).toContain('The requested URL returned error: 403');
      expect(message).not.toMatch(/hunter2|deployer/);
      expect(permanent).toBe(true);
    });

    it('fails a 401 permanently, with a token refused or with none', async () => {
      answerWith(401);
      const withToken = new MirrorCache({ dir: cacheDir, token: 'ghp_refused' });

      for (const mirrors of [cache, withToken]) {
        const error = await mirrors.fetchBranch({ url, provider: 'github' }, 'main').catch((e: unknown) => e);
        expect(error).toBeInstanceOf(PushgateError);
        expect((error as PushgateError).message).toContain(`git fetch main from ${url}: `);
        expect((error as PushgateError).permanent).toBe(true);
      }
    });

    it.each([429, 500, 503])('keeps HTTP %i transient', async (status) => {
      answerWith(status);

      const error = await cache.fetchBranch({ url, provider: 'github' }, 'main').catch((e: unknown) => e);

      expect(error).toBeInstanceOf(PushgateError);
      expect((error as PushgateError).message).toContain(`returned error: ${status}`);
      expect((error as PushgateError).permanent).toBe(false);
    });

    it('kills a fetch that hangs and reports a transient timeout', async () => {
      server.removeAllListeners('request');
      server.on('request', () => undefined); // never answers
      const impatient = new MirrorCache({ dir: cacheDir, fetchTimeoutMs: 500 });

      const error = await impatient.fetchBranch({ url, provider: 'github' }, 'main').catch((e: unknown) => e);

      expect((error as PushgateError).message).toMatch(/timed out after 500 ms/);
      expect((error as PushgateError).permanent).toBe(false);
    });

    it('gives up a fetch stopped (worker shutdown) while it waits behind one that hangs', async () => {
      server.removeAllListeners('request');
      server.on('request', () => undefined); // never answers
      const mirrors = new MirrorCache({ dir: cacheDir, fetchTimeoutMs: 4_000 });
      const hanging = mirrors.fetchBranch({ url, provider: 'github' }, 'main').catch((e: unknown) => e);

      const started = Date.now();
      const stopped = new AbortController();
      setTimeout(() => stopped.abort(new Error('worker shutting down')), 300);
      const error = await mirrors
        .fetchBranch({ url, provider: 'github' }, 'main', stopped.signal)
        .catch((e: unknown) => e);

      expect((error as Error).message).toBe('worker shutting down');
      expect(Date.now() - started).toBeLessThan(2_000);
      await hanging;
    });
  });
});

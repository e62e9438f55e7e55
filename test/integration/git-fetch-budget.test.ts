import { execFileSync, spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runRender } from '../../src/commands/render.js';
import { runCommand } from '../../src/commands/run-command.js';
import { FetchTooLargeError } from '../../src/git/fetch-budget.js';
import { MirrorCache } from '../../src/git/mirror-cache.js';
import { errorMessage } from '../../src/lib/errors.js';
import { CLI } from '../helpers/cli.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { git } from '../helpers/git.js';
import { childRunning, liveInGroup } from '../helpers/process.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';
import { createWorkerHarness } from './worker-harness.js';

const MIB = 1024 * 1024;
/** Large enough that sending it takes many of the budget's 100 ms polls. */
const LARGE_FILE_BYTES = 16 * MIB;
const configMap = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${name}}\n`;

/** Bytes of every file under `dir`. */
async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

/**
 * Commits a file of random bytes (which no compression shrinks, so the fetch carries all of
 * it) beside what the branch holds; returns the commit.
 */
async function commitLargeFile(repo: EnvRepo, bytes: number): Promise<string> {
  await writeFile(path.join(repo.workDir, 'large.bin'), randomBytes(bytes));
  return repo.commit({}, 'large file');
}

/**
 * An ssh stand-in, written into `dir`, that runs git-upload-pack here and lets its output
 * through at about 3 MiB/s, so a 16 MiB pack is still arriving seconds later.
 */
async function slowSsh(dir: string): Promise<string> {
  const ssh = path.join(dir, 'slow-ssh');
  const throttle =
    "process.stdin.on('data', (c) => { process.stdin.pause(); " +
    'process.stdout.write(c, () => setTimeout(() => process.stdin.resume(), 20)); })';
  await writeFile(ssh, `#!/bin/sh\nfor last; do :; done\nsh -c "$last" | node -e "${throttle}"\n`, {
    mode: 0o755,
  });
  return ssh;
}

/**
 * An ssh stand-in that runs git-upload-pack here, lets the first MiB of its output through
 * and then waits on a FIFO: `go` lets the rest through, `fail` drops the connection. Both
 * fetches of a test then stand mid-pack for as long as it needs, however loaded the machine.
 * (The FIFO's path is written into the script: runGit passes git no variable of ours.)
 */
async function gatedSsh(
  dir: string,
  name: string,
): Promise<{ ssh: string; answer: (verdict: 'go' | 'fail') => Promise<void> }> {
  const gate = path.join(dir, `${name}.gate`);
  execFileSync('mkfifo', [gate]);
  const relay =
    "const fs = require('fs'); let sent = 0, gated = false;" +
    "process.stdin.on('data', (c) => { process.stdin.pause(); process.stdout.write(c, () => {" +
    ' sent += c.length;' +
    ` if (!gated && sent >= ${MIB}) { gated = true; if (fs.readFileSync('${gate}', 'utf8') === 'fail') process.exit(1); }` +
    ' process.stdin.resume(); }); })';
  const ssh = path.join(dir, `${name}-ssh`);
  await writeFile(ssh, `#!/bin/sh\nfor last; do :; done\nsh -c "$last" | node -e "${relay}"\n`, {
    mode: 0o755,
  });
  return { ssh, answer: (verdict) => writeFile(gate, verdict) };
}

describe('git mirror cache: the fetch budget (real git over file://)', () => {
  let repo: EnvRepo;
  let cacheDir: string;
  let scratch: string;
  const source = () => ({ url: repo.url, provider: 'github' as const });

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/staging' });
    cacheDir = await mkdtemp(path.join(tmpdir(), 'pushgate-cache-'));
    scratch = await mkdtemp(path.join(tmpdir(), 'pushgate-fetch-budget-'));
  });

  afterEach(async () => {
    await repo.remove();
    await rm(cacheDir, { recursive: true, force: true });
    await rm(scratch, { recursive: true, force: true });
  });

  it('stops a fetch past its budget, permanently, naming the limit, and keeps the mirror as it was', async () => {
    const small = await repo.commit({ 'manifests/a.yaml': configMap('a') });
    const cache = new MirrorCache({ dir: cacheDir, fetchMaxBytes: MIB });
    expect(await cache.fetchBranch(source(), repo.branch)).toBe(small);
    const gitDir = cache.mirrorDir(repo.url);
    const bytesBefore = await folderBytes(gitDir);

    await commitLargeFile(repo, LARGE_FILE_BYTES);
    const error = await cache.fetchBranch(source(), repo.branch).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(FetchTooLargeError);
    expect(error).toMatchObject({ code: 'git_failed', permanent: true });
    expect((error as Error).message).toMatch(
      /^git fetch env\/staging from \S+: stopped after [\d.]+ MiB: the push brings more than the 1 MiB one fetch may write \(PUSHGATE_GIT_FETCH_MAX_BYTES\)$/,
    );
    // The branch still names the commit deployed before, and the partial pack is gone.
    expect(await git(gitDir, ['--git-dir', gitDir, 'rev-parse', `refs/heads/${repo.branch}`])).toBe(small);
    expect((await readdir(path.join(gitDir, 'objects', 'pack'))).filter((n) => n.startsWith('tmp_'))).toEqual(
      [],
    );
    expect((await folderBytes(gitDir)) - bytesBefore).toBeLessThan(MIB);
  });

  it('removes what a fetch stopped by its timeout wrote, and a killed worker’s once it is stale', async () => {
    await repo.commit({ 'manifests/a.yaml': configMap('a') });
    await commitLargeFile(repo, LARGE_FILE_BYTES);
    const ssh = await slowSsh(scratch);
    const slow = { url: `ssh://localhost${repo.bareDir}`, provider: 'github' as const };
    const cache = new MirrorCache({
      dir: cacheDir,
      fetchTimeoutMs: 1_500,
      env: { ...process.env, GIT_SSH_COMMAND: ssh },
    });
    const packDir = path.join(cache.mirrorDir(slow.url), 'objects', 'pack');
    const incoming = async () => (await readdir(packDir)).filter((name) => name.startsWith('tmp_'));

    for (let attempt = 1; attempt <= 2; attempt++) {
      const error = await cache.fetchBranch(slow, repo.branch).catch((e: unknown) => e);
      expect((error as Error).message).toContain('timed out after 1500 ms');
      // Each retry would otherwise leave its own partial pack, up to the budget each.
      expect(await incoming()).toEqual([]);
    }

    // A worker killed mid-fetch runs no cleanup: its partial pack goes once older than any fetch may run.
    const left = path.join(packDir, 'tmp_pack_left');
    await writeFile(left, randomBytes(1024));
    await cache.fetchBranch(slow, 'no-such-branch').catch(() => undefined);
    expect(await incoming()).toEqual(['tmp_pack_left']);
    const longAgo = new Date(Date.now() - 3600_000);
    await utimes(left, longAgo, longAgo);
    await cache.fetchBranch(slow, 'no-such-branch').catch(() => undefined);
    expect(await incoming()).toEqual([]);
  });

  it('leaves alone the partial pack of another process fetching into the mirror when its own fetch fails', async () => {
    await repo.commit({ 'manifests/a.yaml': configMap('a') });
    const large = await commitLargeFile(repo, LARGE_FILE_BYTES);
    const slow = { url: `ssh://localhost${repo.bareDir}`, provider: 'github' as const };
    const workerGate = await gatedSsh(scratch, 'worker');
    const renderGate = await gatedSsh(scratch, 'render');
    // A worker whose fetch fails, and `pushgate render` beside it on the same cache, reached
    // through a symlink (/proc names open files by their real path).
    const linked = path.join(scratch, 'cache-link');
    await symlink(cacheDir, linked);
    const worker = new MirrorCache({ dir: linked, env: { ...process.env, GIT_SSH_COMMAND: workerGate.ssh } });
    const render = new MirrorCache({ dir: linked, env: { ...process.env, GIT_SSH_COMMAND: renderGate.ssh } });
    const packDir = path.join(worker.mirrorDir(slow.url), 'objects', 'pack');
    const incoming = async () =>
      (await readdir(packDir).catch(() => [] as string[])).filter((name) => name.startsWith('tmp_pack'));

    const failing = worker.fetchBranch(slow, repo.branch).catch((e: unknown) => e);
    const [workerPack] = await until(async () => {
      const names = await incoming();
      return names.length === 1 && names;
    });
    const rendering = render.fetchBranch(slow, repo.branch);
    const renderPack = await until(async () => (await incoming()).find((name) => name !== workerPack));

    // Both packs are arriving, and neither fetch can end on its own: the worker's fails now.
    await workerGate.answer('fail');
    expect(errorMessage(await failing)).toMatch(/fetch env\/staging/);
    // Its cleanup has run (the fetch settles after it): its own pack is gone, the render's kept.
    expect(await incoming()).toEqual([renderPack]);

    await renderGate.answer('go');
    expect(await rendering).toBe(large);
    expect(await incoming()).toEqual([]);
  });

  it('fetches up to its budget, and again once the branch is back under it', async () => {
    await repo.commit({ 'manifests/a.yaml': configMap('a') });
    const large = await commitLargeFile(repo, LARGE_FILE_BYTES);

    const tight = new MirrorCache({ dir: cacheDir, fetchMaxBytes: MIB });
    await expect(tight.fetchBranch(source(), repo.branch)).rejects.toBeInstanceOf(FetchTooLargeError);
    const roomy = new MirrorCache({ dir: cacheDir, fetchMaxBytes: 128 * MIB });
    expect(await roomy.fetchBranch(source(), repo.branch)).toBe(large);

    // The large file is reverted away: the next fetch is small and the tight budget lets it in.
    const reverted = await repo.commit({ 'manifests/a.yaml': configMap('b'), 'large.bin': null });
    expect(await tight.fetchBranch(source(), repo.branch)).toBe(reverted);
  });

  it('fails a commit fetched by sha past the budget with the budget error, not "not in the repository"', async () => {
    await repo.commit({ 'manifests/a.yaml': configMap('a') });
    const cache = new MirrorCache({ dir: cacheDir, fetchMaxBytes: MIB });
    await cache.fetchBranch(source(), repo.branch);
    const large = await commitLargeFile(repo, LARGE_FILE_BYTES);
    // Off the branch: fetchCommit has to ask for the commit itself.
    await git(repo.bareDir, ['--git-dir', repo.bareDir, 'update-ref', 'refs/heads/side', large]);
    await repo.forcePush(await git(repo.bareDir, ['--git-dir', repo.bareDir, 'rev-parse', `${large}^`]));
    await git(repo.bareDir, ['--git-dir', repo.bareDir, 'config', 'uploadpack.allowAnySHA1InWant', 'true']);

    const error = await cache.fetchCommit(source(), repo.branch, large).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(FetchTooLargeError);
    expect((error as Error).message).toContain(`git fetch ${large} from ${repo.url}: stopped after`);
  });

  it('pushgate render takes the budget from PUSHGATE_GIT_FETCH_MAX_BYTES and refuses a bad value', async () => {
    await repo.commit({ 'manifests/a.yaml': configMap('a') });
    await commitLargeFile(repo, LARGE_FILE_BYTES);
    const config = path.join(scratch, 'pushgate.yaml');
    await writeFile(
      config,
      [
        'clusters:',
        '  - name: local',
        `    kubeconfig: ${path.join(scratch, 'never-read.kubeconfig')}`,
        'environments:',
        '  - name: web',
        `    repo: {provider: github, name: acme/env, url: "${repo.url}"}`,
        `    branch: ${repo.branch}`,
        '    path: manifests',
        '    cluster: local',
        '',
      ].join('\n'),
    );
    const render = async (maxBytes: string) => {
      const stderr = new PassThrough();
      let said = '';
      stderr.on('data', (chunk: Buffer) => (said += chunk.toString()));
      const outcome = await runCommand('render', runRender, {
        positionals: ['web'],
        config,
        ref: undefined,
        wait: false,
        json: false,
        env: {
          PUSHGATE_CACHE_DIR: path.join(scratch, 'cache'),
          PUSHGATE_GIT_FETCH_MAX_BYTES: maxBytes,
          LOG_LEVEL: 'silent',
        },
        stdout: new PassThrough(),
        stderr,
      });
      return { outcome, said };
    };

    const refused = await render('1048576');
    expect(refused.outcome).toBe(1);
    expect(refused.said).toContain(
      'the push brings more than the 1 MiB one fetch may write (PUSHGATE_GIT_FETCH_MAX_BYTES)',
    );
    const misread = await render('1MiB');
    expect(misread.outcome).toBe(2);
    expect(misread.said).toContain('PUSHGATE_GIT_FETCH_MAX_BYTES="1MiB" must be a positive integer of bytes');
  });
});

describe('deploy worker and a push past the fetch budget (real Redis, git over file://)', () => {
  let redis: TestRedis;

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('fails the job at once (one attempt) naming the limit, and the cache keeps none of it', async () => {
    const repo = await createEnvRepo({ branch: 'env/test' });
    const harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'large', repo, env: { namespace: 'pushgate-fetch-budget-never-applied' } }],
    });
    try {
      await repo.commit({ 'manifests/a.yaml': configMap('a') });
      const large = await commitLargeFile(repo, LARGE_FILE_BYTES);
      await harness.startWorker({ fetchMaxBytes: MIB });

      const record = await harness.waitForJob(await harness.webhook('large', large));

      expect(record).toMatchObject({ state: 'failed', attempts: 1, trigger: { sha: large } });
      expect(record.error).toContain('the push brings more than the 1 MiB one fetch may write');
      const mirror = path.join(harness.cacheDir, (await readdir(harness.cacheDir))[0]!);
      expect(await folderBytes(mirror)).toBeLessThan(MIB);
    } finally {
      await harness.close();
      await repo.remove();
    }
  });
});

describe('a pushgate worker killed mid-fetch (real Redis, git over a slow ssh)', () => {
  let redis: TestRedis;

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('takes its git fetch and git’s helpers with it when SIGKILLed', async () => {
    const repo = await createEnvRepo({ branch: 'env/test' });
    const scratch = await mkdtemp(path.join(tmpdir(), 'pushgate-killed-worker-'));
    const harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [
        {
          name: 'slow',
          repo: { ...repo, url: `ssh://localhost${repo.bareDir}` },
          env: { namespace: 'pushgate-killed-worker-never-applied' },
        },
      ],
    });
    const cacheDir = path.join(scratch, 'cache');
    const configFile = path.join(scratch, 'pushgate.yaml');
    let worker: ChildProcessByStdio<null, Readable, Readable> | undefined;
    let group: number | undefined;
    try {
      await repo.commit({ 'manifests/a.yaml': configMap('a') });
      const large = await commitLargeFile(repo, LARGE_FILE_BYTES);
      await writeFile(configFile, harness.configText);
      worker = spawn(process.execPath, [CLI, 'worker', '--config', configFile], {
        env: {
          ...process.env,
          PUSHGATE_CACHE_DIR: cacheDir,
          TMPDIR: scratch,
          GIT_SSH_COMMAND: await slowSsh(scratch),
          LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      worker.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      worker.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      await harness.webhook('slow', large);
      // The pack arriving: git, its ssh and index-pack all run.
      await until(async () =>
        (await readdir(cacheDir, { recursive: true }).catch(() => [])).some((name) =>
          name.includes('tmp_pack_'),
        ),
      ).catch(() => {
        throw new Error(`no fetch began; the worker said:\n${output}`);
      });
      // git leads a process group of its own.
      group = await childRunning(worker.pid!, 'git');
      expect(group).toBeDefined();
      expect((await liveInGroup(group!)).length).toBeGreaterThan(2);

      worker.kill('SIGKILL');

      // Without a watch on the worker's end, the fetch would run on for over 5 s more (16 MiB at
      // 3 MiB/s at best): 4 s leaves a busy machine time to end the group.
      await until(async () => (await liveInGroup(group!)).length === 0, 4_000).catch(() => undefined);
      expect(await liveInGroup(group!)).toEqual([]);
    } finally {
      worker?.kill('SIGKILL');
      if (group !== undefined) {
        try {
          process.kill(-group, 'SIGKILL');
        } catch {
          // Gone, as it should be.
        }
      }
      await harness.close();
      await repo.remove();
      await rm(scratch, { recursive: true, force: true });
    }
  });
});

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, type TestNamespace } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';
import { createWorkerHarness } from './worker-harness.js';
import { deployment } from './worker-manifests.js';

type Child = ChildProcessByStdio<null, Readable, Readable>;

const SWEEP_MS = 200;

const MIRROR_CACHE = fileURLToPath(new URL('../../dist/src/git/mirror-cache.js', import.meta.url));

async function trees(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.startsWith('pushgate-tree-'));
}

function killed(child: Child): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

let redis: TestRedis;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

// No kubelet here: a Deployment never becomes ready, so a deploy holds its checkout through its health wait.
describe('checkouts of killed processes (real Redis, git, kube-apiserver)', () => {
  it('a worker restarted soon after a SIGKILL removes the checkout the killed one left, never a live worker’s', async () => {
    const repos: EnvRepo[] = [await createEnvRepo(), await createEnvRepo()];
    const namespaces: TestNamespace[] = [
      await createTestNamespace('killed-checkout-live'),
      await createTestNamespace('killed-checkout-dead'),
    ];
    const scratch = await mkdtemp(path.join(tmpdir(), 'pushgate-killed-checkouts-'));
    const harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: ['live', 'dead'].map((name, index) => ({
        name,
        repo: repos[index]!,
        env: { namespace: namespaces[index]!.name, healthTimeout: '90s' },
      })),
    });
    const configFile = path.join(scratch, 'pushgate.yaml');
    const children: Child[] = [];
    let output = '';
    // Each its own cache, all one TMPDIR: what a restarted container finds in its emptyDir.
    const worker = (name: string): Child => {
      const child = spawn(process.execPath, [CLI, 'worker', '--config', configFile], {
        env: {
          ...process.env,
          PUSHGATE_CACHE_DIR: path.join(scratch, `cache-${name}`),
          PUSHGATE_WORKER_CONCURRENCY: '1',
          TMPDIR: scratch,
          LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      children.push(child);
      return child;
    };
    const newTree = (known: string[]) =>
      until(async () => (await trees(scratch)).find((name) => !known.includes(name)), 30_000).catch(() => {
        throw new Error(`no checkout appeared; the workers said:\n${output}`);
      });
    try {
      await writeFile(configFile, harness.configText);
      const shas = await Promise.all(
        repos.map((repo) => repo.commit({ 'manifests/web.yaml': deployment('web') })),
      );
      worker('live');
      await harness.webhook('live', shas[0]!);
      const liveTree = await newTree([]);
      // The live worker deploys one job at a time: the second environment's goes to the second.
      const doomed = worker('doomed');
      await harness.webhook('dead', shas[1]!);
      const deadTree = await newTree([liveTree]);

      await killed(doomed);
      worker('restarted');

      await until(async () => !(await trees(scratch)).includes(deadTree), 20_000).catch(() => {
        throw new Error(`${deadTree} is still there; the workers said:\n${output}`);
      });
      expect(await trees(scratch)).toContain(liveTree);
    } finally {
      await Promise.all(children.map(killed));
      await harness.close();
      await Promise.all([...repos.map((repo) => repo.remove()), ...namespaces.map((ns) => ns.cleanup())]);
      await rm(scratch, { recursive: true, force: true });
    }
  });

  it('a running worker removes the checkout of a process killed after it started, not that of one still running', async () => {
    const repo = await createEnvRepo();
    const harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: 'killed-checkout-never-applied' } }],
    });
    const renders: Child[] = [];
    try {
      await harness.startWorker({ treeSweepIntervalMs: SWEEP_MS });
      const sha = await repo.commit({ 'manifests/web.yaml': deployment('web') });
      // A `pushgate render` beside the worker, say, with a checkout of its own.
      const startRender = async (name: string): Promise<{ render: Child; treeDir: string }> => {
        const script = `
          const { MirrorCache } = await import(${JSON.stringify(MIRROR_CACHE)});
          const mirrors = new MirrorCache({ dir: ${JSON.stringify(path.join(harness.cacheDir, name))} });
          const repo = { url: ${JSON.stringify(repo.url)}, provider: 'github' };
          await mirrors.fetchBranch(repo, ${JSON.stringify(repo.branch)});
          const tree = await mirrors.checkout(repo, ${JSON.stringify(sha)});
          console.log(tree.dir);
          setInterval(() => undefined, 60_000);`;
        const render = spawn(process.execPath, ['--input-type=module', '-e', script], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        renders.push(render);
        let printed = '';
        render.stdout.setEncoding('utf8').on('data', (chunk: string) => (printed += chunk));
        render.stderr.setEncoding('utf8').on('data', (chunk: string) => (printed += chunk));
        const treeDir = await until(() => Promise.resolve(/^(\/.*)\n/.exec(printed)?.[1])).catch(() => {
          throw new Error(`no checkout was made: ${printed}`);
        });
        return { render, treeDir };
      };
      const killedOne = await startRender('killed');
      const living = await startRender('living');

      await killed(killedOne.render);

      // The sweep that removed the dead one's checkout left the living one's alone.
      await until(() => Promise.resolve(!existsSync(killedOne.treeDir)), 5_000);
      expect(existsSync(living.treeDir)).toBe(true);
      await killed(living.render);
      await until(() => Promise.resolve(!existsSync(living.treeDir)), 5_000);
    } finally {
      await Promise.all(renders.map(killed));
      await harness.close();
      await repo.remove();
    }
  });
});

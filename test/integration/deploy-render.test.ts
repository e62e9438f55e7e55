import { CoreV1Api } from '@kubernetes/client-node';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runRender } from '../../src/commands/render.js';
import { MirrorCache } from '../../src/git/mirror-cache.js';
import type { EnvRepo } from '../helpers/env-repo.js';
import { git } from '../helpers/git.js';
import { commitTree, writeBlob, writeGitBomb, writeTree } from '../helpers/git-trees.js';
import { kubeConfigFromTest, type TestNamespace } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { createCommandWorld, type CommandRun, type CommandWorld } from './command-world.js';
import type { WorkerHarness } from './worker-harness.js';
import { configMap } from './worker-manifests.js';

describe('pushgate render (real git, kube-apiserver)', () => {
  let redis: TestRedis;
  let world: CommandWorld;
  let repo: EnvRepo;
  let harness: WorkerHarness;
  let namespace: TestNamespace;
  let dir: string;

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });
  beforeEach(async () => {
    world = await createCommandWorld(redis.url, 'render');
    ({ repo, harness, namespace, dir } = world);
  });
  afterEach(async () => {
    await world.close();
  });

  function render(positionals: string[], ref?: string, showSecrets?: boolean): Promise<CommandRun> {
    return world.run('render', runRender, positionals, { ref, showSecrets });
  }

  it('prints the branch head’s objects as YAML documents and applies nothing', async () => {
    await repo.commit({
      'manifests/a.yaml': configMap('alpha', { v: '1' }),
      'manifests/b.yaml': configMap('beta', { v: '2' }),
    });

    const { code, out } = await render(['web']);

    expect(code).toBe(0);
    const objects = parseAllDocuments(out).map(
      (doc) => doc.toJS() as { kind: string; metadata: { name: string; namespace: string } },
    );
    expect(objects.map((o) => [o.kind, o.metadata.name, o.metadata.namespace])).toEqual([
      ['ConfigMap', 'alpha', namespace.name],
      ['ConfigMap', 'beta', namespace.name],
    ]);
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    const listed = await core.listNamespacedConfigMap({ namespace: namespace.name });
    expect(listed.items.map((item) => item.metadata?.name)).not.toContain('alpha');
  });

  it('needs no Redis: a config whose redis.url is an unset ${REDIS_URL} renders', async () => {
    await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const redisLine = /url: "redis:\/\/[^"]*"/;
    expect(harness.configText).toMatch(redisLine);
    await writeFile(
      path.join(dir, 'pushgate.yaml'),
      harness.configText.replace(redisLine, 'url: "${REDIS_URL}"'),
    );

    const { code, out } = await render(['web']);

    expect(code).toBe(0);
    expect(out).toContain('name: alpha');
  });

  it('renders an older commit with --ref', async () => {
    const old = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: 'old' }) });
    await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: 'new' }) });

    const { code, out } = await render(['web'], old);

    expect(code).toBe(0);
    expect(out).toContain('v: old');
  });

  it('exits 1 with the reason on a policy violation', async () => {
    await repo.commit({ 'manifests/a.yaml': configMap('intruder', { v: '1' }, 'kube-system') });

    const { code, err } = await render(['web']);

    expect(code).toBe(1);
    expect(err).toMatch(/kube-system/);
  });

  it('refuses an empty set as the deploy would, naming a skipped kustomization folder', async () => {
    await repo.commit({
      'manifests/kustomization.yaml': 'resources: [a.yaml]\n',
      'manifests/a.yaml': configMap('alpha', { v: '1' }),
    });

    const { code, out, err } = await render(['web']);

    expect(code).toBe(1);
    expect(out).toBe('');
    expect(err).toMatch(
      /no objects under manifests \(skipped: manifests, which contains kustomization.yaml.*allowEmpty/,
    );
  });

  it('prints Secret values as placeholders with their size, and in clear only with --show-secrets', async () => {
    const secret = [
      'apiVersion: v1',
      'kind: Secret',
      'metadata: {name: creds}',
      'data: {token: c3VwZXItc2VjcmV0LXRva2Vu}', // super-secret-token
      'stringData: {password: hunter2-hunter2}',
      '',
    ].join('\n');
    await repo.commit({
      'manifests/a.yaml': configMap('alpha', { v: 'visible' }),
      'manifests/s.yaml': secret,
    });

    const hidden = await render(['web']);

    expect(hidden.code).toBe(0);
    expect(hidden.out).not.toMatch(/c3VwZXItc2VjcmV0LXRva2Vu|aHVudGVyMi1odW50ZXIy|hunter2/);
    const objects = parseAllDocuments(hidden.out).map((doc) => doc.toJS() as Record<string, unknown>);
    const rendered = objects.find((object) => object.kind === 'Secret');
    expect(rendered?.data).toEqual({ token: '[redacted: 18 bytes]' });
    expect(rendered?.stringData).toEqual({ password: '[redacted: 15 bytes]' });
    expect(hidden.out).toContain('v: visible');
    expect(hidden.err).toContain('--show-secrets');

    const shown = await render(['web'], undefined, true);

    expect(shown.code).toBe(0);
    const clear = parseAllDocuments(shown.out)
      .map((doc) => doc.toJS() as Record<string, unknown>)
      .find((object) => object.kind === 'Secret');
    expect(clear?.data).toEqual({ token: 'c3VwZXItc2VjcmV0LXRva2Vu' });
    expect(clear?.stringData).toEqual({ password: 'hunter2-hunter2' });
  });

  it('renders an environment whose path lies beside a git bomb', async () => {
    const manifest = await writeBlob(repo.bareDir, configMap('alpha', { v: '1' }));
    const manifests = await writeTree(repo.bareDir, [{ mode: '100644', sha: manifest, name: 'a.yaml' }]);
    const bomb = await writeGitBomb(repo.bareDir, 9);
    await commitTree(
      repo,
      await writeTree(repo.bareDir, [
        { mode: '040000', sha: manifests, name: 'manifests' },
        { mode: '040000', sha: bomb, name: 'other' },
      ]),
    );

    const { code, out, err } = await render(['web']);

    expect(err).not.toContain('refusing');
    expect(code).toBe(0);
    const objects = parseAllDocuments(out).map(
      (doc) => doc.toJS() as { kind: string; metadata: { name: string } },
    );
    expect(objects.map((o) => [o.kind, o.metadata.name])).toEqual([['ConfigMap', 'alpha']]);
  });

  it('exits 2 for an unknown environment', async () => {
    const { code, err } = await render(['nope']);

    expect(code).toBe(2);
    expect(err).toMatch(/unknown environment "nope"/);
  });

  it('repacks a mirror that only render fetches into', async () => {
    await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '0' }) });
    expect((await render(['web'])).code).toBe(0);
    const gitDir = new MirrorCache({ dir: path.join(dir, 'cache') }).mirrorDir(repo.url);
    const packLimit = 3;
    await git(gitDir, ['config', 'gc.autoPackLimit', String(packLimit)]);
    const packs = async () =>
      (await readdir(path.join(gitDir, 'objects', 'pack'))).filter((name) => name.endsWith('.pack')).length;

    // Each fetch writes one pack; with gc left to a worker, render's would pile up.
    for (let i = 1; i <= packLimit + 2; i++) {
      await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: String(i) }) });
      const { code, err } = await render(['web']);
      expect(code, err).toBe(0);
      expect(err).not.toMatch(/gc/);
    }

    expect(await packs()).toBeLessThanOrEqual(packLimit);
  });
});

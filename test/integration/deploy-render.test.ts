import { CoreV1Api } from '@kubernetes/client-node';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { parseAllDocuments } from 'yaml';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runRender } from '../../src/commands/render.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, kubeConfigFromTest, type TestNamespace } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap } from './worker-manifests.js';

describe('pushgate render (real git, kube-apiserver)', () => {
  let redis: TestRedis;
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let harness: WorkerHarness;
  let dir: string;

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });
  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace('render');
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name } }],
    });
    dir = await mkdtemp(path.join(tmpdir(), 'pushgate-render-'));
    await writeFile(path.join(dir, 'pushgate.yaml'), harness.configText);
  });
  afterEach(async () => {
    await harness.close();
    await namespace.cleanup();
    await repo.remove();
    await rm(dir, { recursive: true, force: true });
  });

  async function render(positionals: string[], ref?: string) {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const code = await runRender({
      positionals,
      config: path.join(dir, 'pushgate.yaml'),
      ref,
      wait: false,
      json: false,
      env: { PUSHGATE_CACHE_DIR: path.join(dir, 'cache'), LOG_LEVEL: 'silent' },
      stdout,
      stderr,
    });
    return { code, out, err };
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

  it('exits 2 for an unknown environment', async () => {
    const { code, err } = await render(['nope']);

    expect(code).toBe(2);
    expect(err).toMatch(/unknown environment "nope"/);
  });
});

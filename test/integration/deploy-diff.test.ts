import { CoreV1Api } from '@kubernetes/client-node';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runDiff } from '../../src/commands/diff.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, kubeConfigFromTest, type TestNamespace } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap } from './worker-manifests.js';

function secret(name: string, token: string): string {
  return `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\nstringData:\n  token: ${JSON.stringify(token)}\n`;
}

function keptConfigMap(name: string): string {
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n  annotations:\n    pushgate.dev/prune: disabled\ndata:\n  v: "1"\n`;
}

describe('pushgate diff (real git, kube-apiserver)', () => {
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
    namespace = await createTestNamespace('diff');
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '0' } }],
    });
    dir = await mkdtemp(path.join(tmpdir(), 'pushgate-diff-'));
    await writeFile(path.join(dir, 'pushgate.yaml'), harness.configText);
  });
  afterEach(async () => {
    await harness.close();
    await namespace.cleanup();
    await repo.remove();
    await rm(dir, { recursive: true, force: true });
  });

  async function diff(positionals: string[], options: { ref?: string; showSecrets?: boolean } = {}) {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const code = await runDiff({
      positionals,
      config: path.join(dir, 'pushgate.yaml'),
      ref: options.ref,
      wait: false,
      json: false,
      showSecrets: options.showSecrets,
      env: { PUSHGATE_CACHE_DIR: path.join(dir, 'cache'), LOG_LEVEL: 'silent' },
      stdout,
      stderr,
    });
    return { code, out, err };
  }

  async function deployHead(): Promise<void> {
    const job = await harness.waitForJob(await harness.manual('web'));
    expect(job.state, job.error ?? '').toBe('succeeded');
  }

  it('shows each change as a unified diff against the live objects, and what prune would delete; applies nothing', async () => {
    await harness.startWorker();
    await repo.commit({
      'manifests/alpha.yaml': configMap('alpha', { v: '1', same: 'x' }),
      'manifests/beta.yaml': configMap('beta', { v: '1' }),
      'manifests/gamma.yaml': keptConfigMap('gamma'),
      'manifests/token.yaml': secret('token', 'aaaa'),
    });
    await deployHead();
    const next = await repo.commit({
      'manifests/alpha.yaml': configMap('alpha', { v: '2', same: 'x' }),
      'manifests/beta.yaml': null,
      'manifests/gamma.yaml': null,
      'manifests/delta.yaml': configMap('delta', { v: '1' }),
      'manifests/token.yaml': secret('token', 'bbbb'),
    });
    const ns = namespace.name;

    const { code, out, err } = await diff(['web']);

    expect(code, err).toBe(0);
    expect(out).toContain(
      [
        `# change v1 ConfigMap ${ns}/alpha`,
        `--- live/v1/ConfigMap/${ns}/alpha`,
        `+++ ${next.slice(0, 12)}/v1/ConfigMap/${ns}/alpha`,
        '@@ ',
      ].join('\n'),
    );
    expect(out).toMatch(/^- {2}v: "1"\n\+ {2}v: "2"$/m);
    expect(out).not.toMatch(/^[-+] {2}same:/m);
    expect(out).toContain(
      `# create v1 ConfigMap ${ns}/delta\n--- /dev/null\n+++ ${next.slice(0, 12)}/v1/ConfigMap/${ns}/delta`,
    );
    expect(out).toContain(
      `# delete v1 ConfigMap ${ns}/beta\n--- live/v1/ConfigMap/${ns}/beta\n+++ /dev/null`,
    );
    expect(out).toContain(
      `# kept, not in the commit: v1 ConfigMap ${ns}/gamma: not pruned: annotated pushgate.dev/prune: disabled`,
    );
    // A Secret's values are never printed; one replaced by another of the same size still shows.
    expect(out).toMatch(
      /^- {2}token: "?\[redacted: 4 bytes\]"?\n\+ {2}token: "?\[redacted: 4 bytes\] \(changed\)"?$/m,
    );
    expect(out).not.toContain(Buffer.from('aaaa').toString('base64'));
    expect(out).not.toContain(Buffer.from('bbbb').toString('base64'));
    expect(err).toContain(
      `# web at ${next}: 1 to create, 2 to change, 0 to replace, 1 to prune, 0 objects unchanged`,
    );

    // Nothing was written.
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    const names = (await core.listNamespacedConfigMap({ namespace: ns })).items.map(
      (item) => item.metadata?.name,
    );
    expect(names).toEqual(expect.arrayContaining(['alpha', 'beta', 'gamma']));
    expect(names).not.toContain('delta');
    expect((await core.readNamespacedConfigMap({ name: 'alpha', namespace: ns })).data).toEqual({
      v: '1',
      same: 'x',
    });

    // Once deployed, the same commit differs in nothing: the dry-run matches what is live.
    await deployHead();
    const after = await diff(['web']);
    expect(after.code, after.err).toBe(0);
    expect(after.out).not.toContain('---');
    expect(after.err).toContain(`0 to create, 0 to change, 0 to replace, 0 to prune, 3 objects unchanged`);
  });

  it('prints Secret values with --show-secrets, and compares an older commit with --ref', async () => {
    await harness.startWorker();
    const old = await repo.commit({ 'manifests/token.yaml': secret('token', 'aaaa') });
    await deployHead();
    await repo.commit({ 'manifests/token.yaml': secret('token', 'bbbb') });

    const shown = await diff(['web'], { showSecrets: true });
    expect(shown.out).toContain(`-  token: ${Buffer.from('aaaa').toString('base64')}`);
    expect(shown.out).toContain(`+  token: ${Buffer.from('bbbb').toString('base64')}`);

    const atOld = await diff(['web'], { ref: old.slice(0, 8) });
    expect(atOld.code, atOld.err).toBe(0);
    expect(atOld.err).toContain(`# web at ${old}: 0 to create, 0 to change`);
  });

  it('fails (exit 1) naming the object when the commit would be refused before any write', async () => {
    await repo.commit({
      'manifests/bad.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\n  namespace: kube-system\ndata: {}\n',
    });

    const { code, out, err } = await diff(['web']);

    expect(code).toBe(1);
    expect(out).toBe('');
    expect(err).toMatch(/^pushgate diff: .*ConfigMap kube-system\/bad/m);
  });
});

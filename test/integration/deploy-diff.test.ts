import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runDiff } from '../../src/commands/diff.js';
import type { EnvRepo } from '../helpers/env-repo.js';
import { createClusterClient } from '../../src/kube/cluster.js';
import { kubeConfigFromTest, kubeconfigPathFromTest, type TestNamespace } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { createCommandWorld, type CommandRun, type CommandWorld } from './command-world.js';
import type { WorkerHarness } from './worker-harness.js';
import { configMap } from './worker-manifests.js';

function secret(name: string, token: string): string {
  return `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\nstringData:\n  token: ${JSON.stringify(token)}\n`;
}

/** The lines of `out` from the one starting with `header` to the next `# ` line. */
function section(out: string, header: string): string {
  const from = out.indexOf(header);
  expect(from, `${header} in:\n${out}`).toBeGreaterThanOrEqual(0);
  const next = out.indexOf('\n# ', from + 1);
  return out.slice(from, next < 0 ? undefined : next + 1);
}

function keptConfigMap(name: string): string {
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n  annotations:\n    pushgate.dev/prune: disabled\ndata:\n  v: "1"\n`;
}

describe('pushgate diff (real git, kube-apiserver)', () => {
  let redis: TestRedis;
  let world: CommandWorld;
  let repo: EnvRepo;
  let harness: WorkerHarness;
  let namespace: TestNamespace;

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });
  beforeEach(async () => {
    world = await createCommandWorld(redis.url, 'diff', { healthTimeout: '0' });
    ({ repo, harness, namespace } = world);
  });
  afterEach(async () => {
    await world.close();
  });

  function diff(
    positionals: string[],
    options: { ref?: string; showSecrets?: boolean; json?: boolean; exitCode?: boolean } = {},
  ): Promise<CommandRun> {
    return world.run('diff', runDiff, positionals, options);
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

  it('exits 3 with --exit-code when a deploy would change something, 0 once nothing differs (a drift check)', async () => {
    await harness.startWorker();
    await repo.commit({ 'manifests/alpha.yaml': configMap('alpha', { v: '1' }) });
    await deployHead();
    const ns = namespace.name;

    const inSync = await diff(['web'], { exitCode: true });
    expect(inSync.code, inSync.err).toBe(0);

    // Drift: a hand edit that git does not hold.
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    const live = await core.readNamespacedConfigMap({ name: 'alpha', namespace: ns });
    live.data = { v: 'by-hand' };
    await core.replaceNamespacedConfigMap({
      name: 'alpha',
      namespace: ns,
      body: live,
      fieldManager: 'kubectl-edit',
    });
    const drifted = await diff(['web'], { exitCode: true, json: true });
    expect(drifted.code, drifted.err).toBe(3);
    expect(drifted.err, 'a difference is not a failure: no error line').not.toContain('"error"');
    const report = JSON.parse(drifted.out) as { changes: { action: string; name: string }[] };
    expect(report.changes).toEqual([expect.objectContaining({ action: 'change', name: 'alpha' })]);
    // Without the flag the same drift still exits 0, as before.
    expect((await diff(['web'])).code).toBe(0);

    // An object to prune, and nothing else, is a change too.
    await repo.commit({ 'manifests/beta.yaml': configMap('beta', { v: '1' }) });
    await deployHead();
    await repo.commit({ 'manifests/beta.yaml': null });
    const pruning = await diff(['web'], { exitCode: true });
    expect(pruning.code, pruning.err).toBe(3);
    expect(pruning.out).toContain(`# delete v1 ConfigMap ${ns}/beta`);
    expect(pruning.err).toContain('0 to create, 0 to change, 0 to replace, 1 to prune');
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

  it('prints one JSON object with --json: each change with its diff as text, what prune keeps, the count unchanged', async () => {
    await harness.startWorker();
    await repo.commit({
      'manifests/alpha.yaml': configMap('alpha', { v: '1' }),
      'manifests/gamma.yaml': keptConfigMap('gamma'),
      'manifests/token.yaml': secret('token', 'aaaa'),
    });
    await deployHead();
    const next = await repo.commit({
      'manifests/alpha.yaml': configMap('alpha', { v: '2' }),
      'manifests/gamma.yaml': null,
    });

    const { code, out, err } = await diff(['web'], { json: true });

    expect(code, err).toBe(0);
    const ns = namespace.name;
    const parsed = JSON.parse(out) as Record<string, unknown>;
    expect(parsed).toEqual({
      environment: 'web',
      sha: next,
      changes: [
        {
          action: 'change',
          apiVersion: 'v1',
          kind: 'ConfigMap',
          namespace: ns,
          name: 'alpha',
          diff: expect.stringContaining(
            `--- live/v1/ConfigMap/${ns}/alpha\n+++ ${next.slice(0, 12)}/v1/ConfigMap/${ns}/alpha\n@@`,
          ) as unknown,
        },
      ],
      unchanged: 1,
      notCompared: [],
      keptFromPrune: [
        {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          namespace: ns,
          name: 'gamma',
          why: 'not pruned: annotated pushgate.dev/prune: disabled',
        },
      ],
    });
    expect((parsed.changes as { diff: string }[])[0]!.diff).toMatch(/^- {2}v: "1"\n\+ {2}v: "2"$/m);
    expect(out.split('\n')).toHaveLength(2);
  });

  it('shows the fields set by hand (kubectl) that a deploy removes, changed object or not', async () => {
    await harness.startWorker();
    await repo.commit({
      'manifests/alpha.yaml': configMap('alpha', { a: '1' }),
      'manifests/beta.yaml': configMap('beta', { a: '1' }),
    });
    await deployHead();
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    const ns = namespace.name;
    for (const name of ['alpha', 'beta']) {
      const live = await core.readNamespacedConfigMap({ name, namespace: ns });
      live.data = { ...live.data, extra: 'hand' };
      if (name === 'alpha') live.metadata!.labels = { ...live.metadata!.labels, hand: 'yes' };
      await core.replaceNamespacedConfigMap({
        name,
        namespace: ns,
        body: live,
        fieldManager: 'kubectl-edit',
      });
    }
    await repo.commit({ 'manifests/beta.yaml': configMap('beta', { a: '2' }) });

    const { code, out, err } = await diff(['web']);

    expect(code, err).toBe(0);
    const alpha = section(out, `# change v1 ConfigMap ${ns}/alpha`);
    expect(alpha).toMatch(
      /^# change v1 ConfigMap \S+\/alpha: fields set by hand \(kubectl\) that git does not declare go$/m,
    );
    expect(alpha).toMatch(/^- {2}extra: hand$/m);
    expect(alpha).toMatch(/^- {4}hand: yes$/m);
    const beta = section(out, `# change v1 ConfigMap ${ns}/beta`);
    expect(beta).toMatch(/^- {2}a: "1"\n- {2}extra: hand\n\+ {2}a: "2"$/m);
    expect(err).toContain('0 to create, 2 to change');

    await deployHead();
    expect((await core.readNamespacedConfigMap({ name: 'alpha', namespace: ns })).data).toEqual({ a: '1' });
    const after = await diff(['web']);
    expect(after.out).toBe('');
    expect(after.err).toContain('0 to create, 0 to change, 0 to replace, 0 to prune, 2 objects unchanged');
  });

  it('shows the keys of a Secret an earlier pushgate applied as stringData that a deploy removes', async () => {
    await harness.startWorker();
    const ns = namespace.name;
    // As pushgate applied stringData before folding it into data: its entry owns stringData keys only.
    const kube = createClusterClient({ name: 'diff', kubeconfig: kubeconfigPathFromTest() });
    await kube.transport.request({
      method: 'PATCH',
      path: `/api/v1/namespaces/${ns}/secrets/creds`,
      query: { fieldManager: 'pushgate', force: 'true' },
      contentType: 'application/apply-patch+yaml',
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'creds', namespace: ns, labels: { 'pushgate.dev/environment': 'web' } },
        stringData: { user: 'admin', token: 'aaaa' },
      },
    });
    await repo.commit({ 'manifests/creds.yaml': secret('creds', 'aaaa') });

    const { code, out, err } = await diff(['web']);

    expect(code, err).toBe(0);
    const creds = section(out, `# change v1 Secret ${ns}/creds`);
    expect(creds).toMatch(
      /^# change v1 Secret \S+\/creds: keys pushgate applied as stringData that git no longer declares go$/m,
    );
    expect(creds).toMatch(/^- {2}user: "?\[redacted: 5 bytes\]"?$/m);
    expect(creds).not.toMatch(/^[-+] {2}token:/m);

    await deployHead();
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    expect((await core.readNamespacedSecret({ name: 'creds', namespace: ns })).data).toEqual({
      token: Buffer.from('aaaa').toString('base64'),
    });
    const after = await diff(['web']);
    expect(after.out).toBe('');
  });

  it('lists as not compared, exit 0 (3 with --exit-code), an object whose dry-run only fields set by hand refuse (a deploy takes them over first)', async () => {
    await harness.startWorker();
    const service = (port: number) =>
      `apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: { app: web }\n  ports: [{ name: http, port: ${port} }]\n`;
    await repo.commit({ 'manifests/service.yaml': service(80) });
    await deployHead();
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    const live = await core.readNamespacedService({ name: 'web', namespace: namespace.name });
    live.spec!.ports = [{ name: 'http', port: 8080, protocol: 'TCP', targetPort: 8080 }];
    await core.replaceNamespacedService({
      name: 'web',
      namespace: namespace.name,
      body: live,
      fieldManager: 'kubectl-edit',
    });
    await repo.commit({ 'manifests/service.yaml': service(81) });

    const { code, out, err } = await diff(['web']);

    expect(code, err).toBe(0);
    expect(out).toMatch(
      new RegExp(
        `^# not compared: v1 Service ${namespace.name}/web: its dry-run is refused while fields set by hand`,
        'm',
      ),
    );
    expect(err).toContain('1 not compared');
    // A gate cannot pass what it could not compare: --exit-code says something differs.
    expect((await diff(['web'], { exitCode: true })).code).toBe(3);
  });

  it('refuses (exit 1) what a deploy refuses before any dry-run: an object named as the inventory', async () => {
    await repo.commit({ 'manifests/inventory.yaml': configMap('pushgate-inventory-web', { a: '1' }) });

    const { code, err } = await diff(['web']);

    expect(code).toBe(1);
    expect(err).toContain("is pushgate's inventory of environment web; choose another name");
    // A check that could not run is a failure, not a difference, with --exit-code too.
    expect((await diff(['web'], { exitCode: true })).code).toBe(1);
  });

  it('shows a change among many objects of one kind (read with one LIST) as cleanly as any other', async () => {
    await harness.startWorker();
    const files = (changed: string) =>
      Object.fromEntries(
        Array.from({ length: 9 }, (_, n) => [
          `manifests/c${n}.yaml`,
          configMap(`c${n}`, { a: n === 3 ? changed : '1' }),
        ]),
      );
    await repo.commit(files('1'));
    await deployHead();
    await repo.commit(files('2'));

    const { out } = await diff(['web']);

    const hunks = out.split('\n').filter((line) => /^[-+](?![-+]{2} )/.test(line));
    expect(hunks).toEqual(['-  a: "1"', '+  a: "2"']);
  });

  it('shows a change inside a CRLF value as that line alone, each line ending escaped', async () => {
    await harness.startWorker();
    // As `kubectl create configmap --from-file` keeps a file written on Windows.
    const ini = (port: string) => `[server]\r\nport = ${port}\r\nhost = example.com\r\nmode = production\r\n`;
    const short = (b: string) => `a=1\r\nb=${b}\r\n`;
    await repo.commit({
      'manifests/app.yaml': configMap('app', { 'app.ini': ini('8080'), short: short('1') }),
    });
    await deployHead();
    await repo.commit({
      'manifests/app.yaml': configMap('app', { 'app.ini': ini('9090'), short: short('2') }),
    });

    const { code, out, err } = await diff(['web']);

    expect(code, err).toBe(0);
    const changed = out.split('\n').filter((line) => /^[-+](?![-+]{2} )/.test(line));
    expect(changed).toEqual([
      '-    port = 8080\\r\\n\\',
      '+    port = 9090\\r\\n\\',
      '-    b=1\\r\\n"',
      '+    b=2\\r\\n"',
    ]);
    // Each value is a double-quoted scalar continued with escaped line breaks, which YAML
    // leaves out: the lines shown are the value, its \r\n included, and nothing else.
    expect(out).toContain(
      [
        '   app.ini: "[server]\\r\\n\\',
        '-    port = 8080\\r\\n\\',
        '+    port = 9090\\r\\n\\',
        '     host = example.com\\r\\n\\',
        '     mode = production\\r\\n"',
        '   short: "a=1\\r\\n\\',
      ].join('\n'),
    );
  });

  it('shows a forced replacement as the server would create the object again', async () => {
    await harness.startWorker();
    // A Job's template cannot change: its manifest leaves out much the server fills in.
    const frozen = (v: string) =>
      `apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: frozen\n  annotations: { pushgate.dev/force: enabled }\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{ name: main, image: "busybox:${v}" }]\n`;
    await repo.commit({ 'manifests/frozen.yaml': frozen('1') });
    await deployHead();
    await repo.commit({ 'manifests/frozen.yaml': frozen('2') });

    const { code, out, err } = await diff(['web']);

    expect(code, err).toBe(0);
    expect(out).toContain(
      `# replace batch/v1 Job ${namespace.name}/frozen: an immutable field changes and it is annotated pushgate.dev/force: deleted and created again`,
    );
    // The change, and what the server generates for each Job it creates (its uid's labels),
    // not what its manifest leaves out.
    const changed = out.split('\n').filter((text) => /^[-+](?![-+]{2} )/.test(text));
    expect(
      changed.filter((text) => !/controller-uid|batch\.kubernetes\.io\/job-name|job-name:/.test(text)),
    ).toEqual(['-        - image: busybox:1', '+        - image: busybox:2']);
  });

  it('fails (exit 1) as a deploy would refuse a commit that puts a kustomization in a folder it applied', async () => {
    await harness.startWorker();
    await repo.commit({
      'manifests/app/a.yaml': configMap('alpha', { v: '1' }),
      'manifests/b.yaml': configMap('beta', { v: '1' }),
    });
    await deployHead();
    const applied = await repo.head();
    await repo.commit({ 'manifests/app/kustomization.yaml': 'resources: [a.yaml]\n' });

    const refused = await diff(['web']);

    expect(refused.code).toBe(1);
    expect(refused.out).toBe('');
    expect(refused.err).toMatch(
      new RegExp(
        `^pushgate diff: refusing to deploy: manifests/app \\(contains kustomization\\.yaml; .*objects it held when ${applied.slice(0, 12)} was applied would be pruned`,
        'm',
      ),
    );
    // Its files gone too, the prune is meant: shown, not refused.
    await repo.commit({ 'manifests/app/a.yaml': null });
    const meant = await diff(['web']);
    expect(meant.code, meant.err).toBe(0);
    expect(meant.err).toContain('0 to create, 0 to change, 0 to replace, 1 to prune');
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

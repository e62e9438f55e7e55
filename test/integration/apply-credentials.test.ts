import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { closeClusterClients, createClusterClient, type ClusterClient } from '../../src/kube/cluster.js';
import { planObjects } from '../../src/kube/plan.js';
import { pruneObjects } from '../../src/kube/prune.js';
import type { PreparedObject } from '../../src/manifests/prepare.js';
import { kubeconfigPathFromTest } from '../helpers/kube.js';

let dir: string;
let kube: ClusterClient;

/** The test API server's kubeconfig, in `folder`, with its user's credential from an exec plugin. */
async function kubeconfigWithExec(folder: string, exec: Record<string, unknown>): Promise<string> {
  const config = parse(await readFile(kubeconfigPathFromTest(), 'utf8')) as {
    users: { name: string; user: Record<string, unknown> }[];
  };
  for (const entry of config.users) {
    entry.user = {
      exec: { apiVersion: 'client.authentication.k8s.io/v1', interactiveMode: 'Never', ...exec },
    };
  }
  const file = path.join(folder, 'kubeconfig');
  await writeFile(file, stringify(config));
  return file;
}

/** Reached through an exec credential plugin that is down (as `aws eks get-token` can be). */
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pushgate-exec-'));
  const file = await kubeconfigWithExec(dir, {
    command: 'sh',
    args: ['-c', 'echo "token service unavailable" >&2; exit 1'],
  });
  kube = createClusterClient({ name: 'exec-down', kubeconfig: file });
});

afterAll(async () => {
  closeClusterClients();
  await rm(dir, { recursive: true, force: true });
});

const configMap: PreparedObject = {
  object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'default' }, data: {} },
  source: { file: 'env/app.yaml', document: 1 },
  ref: { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: 'a' },
  resource: { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true },
  stage: 2,
  kindFromSet: false,
};

describe('cluster credentials that cannot be loaded', () => {
  it('fail a dry-run or apply as transient (retried), not as the manifest’s fault', async () => {
    const { failures } = await planObjects(kube, [configMap]);

    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ permanent: false, network: true });
    expect(failures[0]?.message).toContain('token service unavailable');
  });

  it('name the cluster, and leave what the plugin traced on stderr out of the failure', async () => {
    const folder = await mkdtemp(path.join(tmpdir(), 'pushgate-exec-'));
    try {
      const file = await kubeconfigWithExec(folder, {
        command: 'sh',
        args: [
          '-c',
          'set -x; REFRESH_TOKEN=rt-0123456789abcdef0123; echo "error: identity provider unreachable" >&2; exit 1',
        ],
      });
      const traced = createClusterClient({ name: 'exec-traced', kubeconfig: file });

      const { failures } = await planObjects(traced, [configMap]);

      expect(failures).toHaveLength(1);
      expect(failures[0]?.message).toContain('cluster exec-traced (https://');
      expect(failures[0]?.message).toContain(
        'cannot load the cluster credentials: exec credential plugin "sh" exited with code 1: error: identity provider unreachable',
      );
      expect(failures[0]?.message).not.toContain('rt-0123456789abcdef0123');
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('fail a prune delete as transient, so the object is deleted on a retry', async () => {
    const pruned = await pruneObjects(kube, { name: 'env', namespace: 'default' }, [configMap.ref], () =>
      Promise.resolve(),
    );

    expect(pruned.failures).toHaveLength(1);
    expect(pruned.failures[0]?.permanent).toBe(false);
  });
});

describe('an exec credential plugin', () => {
  const secrets = {
    GITHUB_WEBHOOK_SECRET: 'webhook-secret-value',
    GITLAB_WEBHOOK_TOKEN: 'gitlab-token-value',
    GIT_TOKEN: 'git-token-value',
    PUSHGATE_API_TOKEN_FILE: '/run/secrets/api-token',
    REDIS_URL: 'redis://:redis-password-value@redis:6379',
  };
  let pluginDir: string;
  let plugin: ClusterClient;

  /** The plugin records each run and its environment, then prints the credential file. */
  async function writePlugin(folder: string, credential: unknown): Promise<void> {
    await writeFile(path.join(folder, 'credential.json'), JSON.stringify(credential));
    await writeFile(
      path.join(folder, 'plugin.sh'),
      '#!/bin/sh\nhere=$(dirname "$0")\necho run >> "$here/runs"\nenv > "$here/env"\ncat "$here/credential.json"\n',
      { mode: 0o755 },
    );
  }

  async function runs(folder: string): Promise<number> {
    const text = await readFile(path.join(folder, 'runs'), 'utf8').catch(() => '');
    return text.split('\n').filter((line) => line === 'run').length;
  }

  beforeAll(async () => {
    pluginDir = await mkdtemp(path.join(tmpdir(), 'pushgate-exec-plugin-'));
    // The admin's client certificate, handed out by the plugin instead of the kubeconfig.
    const admin = parse(await readFile(kubeconfigPathFromTest(), 'utf8')) as {
      users: { user: Record<string, string> }[];
    };
    const pem = (field: string): string =>
      Buffer.from(admin.users[0]!.user[field]!, 'base64').toString('utf8');
    await writePlugin(pluginDir, {
      apiVersion: 'client.authentication.k8s.io/v1',
      kind: 'ExecCredential',
      status: {
        clientCertificateData: pem('client-certificate-data'),
        clientKeyData: pem('client-key-data'),
        expirationTimestamp: new Date(Date.now() + 3600_000).toISOString(),
      },
    });
    const file = await kubeconfigWithExec(pluginDir, {
      command: './plugin.sh',
      env: [{ name: 'PLUGIN_REGION', value: 'eu-west-1' }],
    });
    plugin = createClusterClient(
      { name: 'exec-plugin', kubeconfig: file },
      { ...process.env, ...secrets, AWS_PROFILE: 'deploy' },
    );
  });

  afterAll(async () => {
    await rm(pluginDir, { recursive: true, force: true });
  });

  it('authenticates with the credential the plugin prints', async () => {
    const { failures } = await planObjects(plugin, [configMap]);

    expect(failures).toEqual([]);
    expect(await runs(pluginDir)).toBe(1);
  });

  it('runs the plugin without pushgate’s secrets, with its own env and KUBERNETES_EXEC_INFO', async () => {
    const env = await readFile(path.join(pluginDir, 'env'), 'utf8');

    for (const value of Object.values(secrets)) expect(env).not.toContain(value);
    expect(env).toMatch(/^AWS_PROFILE=deploy$/m);
    expect(env).toMatch(/^PLUGIN_REGION=eu-west-1$/m);
    const info = /^KUBERNETES_EXEC_INFO=(.*)$/m.exec(env)?.[1];
    expect(JSON.parse(info ?? '{}')).toEqual({
      apiVersion: 'client.authentication.k8s.io/v1',
      kind: 'ExecCredential',
      spec: { interactive: false },
    });
  });

  it('keeps the credential until it expires, and runs the plugin again after a refusal', async () => {
    const before = await runs(pluginDir);
    await plugin.kubeConfig.applyToHTTPSOptions({});
    await plugin.kubeConfig.applyToHTTPSOptions({});
    expect(await runs(pluginDir)).toBe(before);

    plugin.kubeConfig.forgetCredentials();
    await plugin.kubeConfig.applyToHTTPSOptions({});
    expect(await runs(pluginDir)).toBe(before + 1);
  });

  it('fails a deploy step as transient, naming the plugin, when its answer is not a credential', async () => {
    const folder = await mkdtemp(path.join(tmpdir(), 'pushgate-exec-plugin-'));
    try {
      await writePlugin(folder, {
        apiVersion: 'client.authentication.k8s.io/v1beta1',
        kind: 'ExecCredential',
        status: { token: 't' },
      });
      const file = await kubeconfigWithExec(folder, { command: './plugin.sh' });
      const wrong = createClusterClient({ name: 'exec-wrong-version', kubeconfig: file });

      const { failures } = await planObjects(wrong, [configMap]);

      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ permanent: false });
      expect(failures[0]?.message).toContain('exec credential plugin');
      expect(failures[0]?.message).toContain('apiVersion "client.authentication.k8s.io/v1beta1"');
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});

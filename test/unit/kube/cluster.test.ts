import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeClusterClients, createClusterClient, loadKubeConfig } from '../../../src/kube/cluster.js';
import { KubeApiError } from '../../../src/kube/api-error.js';
import { ConfigError } from '../../../src/lib/errors.js';

let dir: string;

function kubeconfig(server: string, contexts: string[]): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server } }],
    users: [{ name: 'u', user: { token: 'not-a-real-token' } }],
    contexts: contexts.map((name) => ({ name, context: { cluster: 'c', user: 'u' } })),
    'current-context': contexts[0],
  });
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pushgate-kubeconfig-'));
});

afterEach(async () => {
  closeClusterClients();
  await rm(dir, { recursive: true, force: true });
});

describe('loadKubeConfig', () => {
  it('uses the cluster kubeconfig and selects the named context', async () => {
    const file = path.join(dir, 'config');
    await writeFile(file, kubeconfig('https://prod.example:6443', ['admin', 'reader']));

    const kc = loadKubeConfig({ name: 'prod', kubeconfig: file, context: 'reader' }, {});

    expect(kc.getCurrentContext()).toBe('reader');
    expect(kc.getCurrentCluster()?.server).toBe('https://prod.example:6443');
  });

  it('names the available contexts when the configured one is missing', async () => {
    const file = path.join(dir, 'config');
    await writeFile(file, kubeconfig('https://prod.example:6443', ['admin', 'reader']));

    expect(() => loadKubeConfig({ name: 'prod', kubeconfig: file, context: 'nope' }, {})).toThrow(
      new ConfigError('cluster prod: context "nope" is not in the kubeconfig (available: admin, reader)'),
    );
  });

  it('refuses a context naming a user the kubeconfig lacks, as client-go does', async () => {
    const file = path.join(dir, 'config');
    await writeFile(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: 'https://prod.example:6443' } }],
        users: [{ name: 'deployer', user: { token: 't' } }],
        contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'deployr' } }],
        'current-context': 'ctx',
      }),
    );

    expect(() => loadKubeConfig({ name: 'prod', kubeconfig: file }, {})).toThrow(
      new ConfigError('cluster prod: user "deployr" was not found for context "ctx"'),
    );
  });

  it('refuses a cluster with both a CA and insecure-skip-tls-verify, as kubectl does', async () => {
    const file = path.join(dir, 'config');
    await writeFile(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'c',
            cluster: {
              server: 'https://prod.example:6443',
              'certificate-authority': path.join(dir, 'ca.crt'),
              'insecure-skip-tls-verify': true,
            },
          },
        ],
        users: [{ name: 'u', user: { token: 't' } }],
        contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'ctx',
      }),
    );

    expect(() => loadKubeConfig({ name: 'prod', kubeconfig: file }, {})).toThrow(
      new ConfigError(
        'cluster prod: kubeconfig cluster "c" has insecure-skip-tls-verify and a certificate authority: ' +
          'specifying a root certificates file with the insecure flag is not allowed',
      ),
    );
  });

  it('falls back to $KUBECONFIG, merging a path list', async () => {
    const first = path.join(dir, 'a');
    const second = path.join(dir, 'b');
    await writeFile(first, kubeconfig('https://a.example', ['a']));
    await writeFile(second, kubeconfig('https://b.example', ['b']));

    const kc = loadKubeConfig(
      { name: 'x', context: 'b' },
      { KUBECONFIG: `${first}${path.delimiter}${second}`, HOME: dir },
    );

    expect(kc.getContexts().map((c) => c.name)).toEqual(['a', 'b']);
  });

  it('skips the files of a $KUBECONFIG list that do not exist, as kubectl does', async () => {
    const present = path.join(dir, 'a');
    await writeFile(present, kubeconfig('https://a.example', ['a']));
    const missing = path.join(dir, 'nonexistent');

    const kc = loadKubeConfig(
      { name: 'x' },
      { KUBECONFIG: `${missing}${path.delimiter}${present}${path.delimiter}${missing}-2`, HOME: dir },
    );

    expect(kc.getCurrentCluster()?.server).toBe('https://a.example');
  });

  it('says the paths came from $KUBECONFIG when none of its files exist', () => {
    const missing = [path.join(dir, 'one'), path.join(dir, 'two')];
    expect(() =>
      loadKubeConfig({ name: 'x' }, { KUBECONFIG: missing.join(path.delimiter), HOME: dir }),
    ).toThrow(
      new ConfigError(
        `cluster x: cannot load kubeconfig: no file of $KUBECONFIG exists (${missing.join(', ')})`,
      ),
    );
  });

  it('fails clearly when there is no kubeconfig anywhere', () => {
    expect(() => loadKubeConfig({ name: 'x' }, { HOME: dir })).toThrow(
      /cluster x: cannot load kubeconfig: no kubeconfig given/,
    );
  });

  it('names where a kubeconfig is not YAML without quoting its lines (they may hold a token)', async () => {
    const file = path.join(dir, 'config');
    await writeFile(file, 'apiVersion: v1\nusers:\n- name: u\n  user:\n    token: sekrit-abc: bad\n');

    let thrown: unknown;
    try {
      loadKubeConfig({ name: 'prod', kubeconfig: file }, {});
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const { message, cause } = thrown as ConfigError;
    expect(message).toMatch(
      /^cluster prod: cannot load kubeconfig: not valid YAML: .+ at line 5, column \d+$/,
    );
    expect(`${message} ${String(cause)}`).not.toContain('sekrit');
  });

  it('logs a failed exec plugin’s stderr at debug level only, and names the cluster in the error', async () => {
    const file = path.join(dir, 'config');
    await writeFile(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: 'https://prod.example:6443' } }],
        users: [
          {
            name: 'u',
            user: {
              exec: {
                apiVersion: 'client.authentication.k8s.io/v1',
                command: 'sh',
                args: ['-c', 'echo "+ SECRET=hunter2" >&2; echo "login expired" >&2; exit 1'],
              },
            },
          },
        ],
        contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'ctx',
      }),
    );
    const debug: unknown[] = [];
    const client = createClusterClient(
      { name: 'prod', kubeconfig: file },
      {},
      {
        logger: { debug: (object: unknown) => debug.push(object) },
      },
    );

    const error = await client.transport
      .request({ method: 'GET', path: '/version' })
      .catch((e: unknown) => e);

    expect((error as Error).message).toBe(
      'cluster prod (https://prod.example:6443): GET /version: cannot load the cluster credentials: ' +
        'exec credential plugin "sh" exited with code 1: login expired',
    );
    expect(debug).toEqual([
      expect.objectContaining({ cluster: 'prod', exitCode: 1, stderr: '+ SECRET=hunter2\nlogin expired\n' }),
    ]);
  });

  it('returns one cached client per cluster', async () => {
    const file = path.join(dir, 'config');
    await writeFile(file, kubeconfig('https://prod.example:6443', ['admin']));

    const a = createClusterClient({ name: 'prod', kubeconfig: file }, {});
    const b = createClusterClient({ name: 'prod', kubeconfig: file }, {});

    expect(a).toBe(b);
  });
});

describe('KubeApiError.transient', () => {
  it.each([
    [undefined, 'connect ECONNREFUSED', true],
    [500, 'etcdserver: leader changed', true],
    [503, 'unavailable', true],
    [429, 'too many requests', true],
    [409, 'the object has been modified', true],
    [422, 'Service "x" is invalid', false],
    [400, 'bad request', false],
    [404, 'namespaces "x" not found', false],
    [403, 'forbidden', false],
    [500, 'failed to create typed patch object (a/b): .spec.size: expected numeric', false],
  ])('HTTP %s "%s" is transient: %s', (status, message, transient) => {
    expect(new KubeApiError(message, status === undefined ? {} : { status }).transient).toBe(transient);
  });
});

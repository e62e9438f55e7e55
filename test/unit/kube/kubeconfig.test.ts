import { chmodSync, writeFileSync } from 'node:fs';
import type https from 'node:https';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { escapeHeaderKey, KubeAccess } from '../../../src/kube/kubeconfig.js';
import { tempDirs } from '../../helpers/temp-dirs.js';

/** Each test's folder, removed after it. */
const configDir = tempDirs('kubeaccess-');

function kubeconfig(
  dir: string,
  user: Record<string, unknown>,
  cluster: Record<string, unknown> = {},
): string {
  const file = join(dir, 'config');
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'main',
      clusters: [{ name: 'c', cluster: { server: 'https://api.example:6443', ...cluster } }],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'main', context: { cluster: 'c', user: 'u' } }],
    }),
  );
  return file;
}

async function optionsFor(file: string): Promise<https.RequestOptions> {
  const access = new KubeAccess();
  access.loadFromFile(file);
  const options: https.RequestOptions = {};
  await access.applyToHTTPSOptions(options);
  return options;
}

describe('KubeAccess (kubeconfig without loading the whole client)', () => {
  it('reads certificate files relative to the kubeconfig and the CA as base64 data', async () => {
    const dir = configDir();
    writeFileSync(join(dir, 'client.crt'), 'CERT');
    writeFileSync(join(dir, 'client.key'), 'KEY');
    const file = kubeconfig(
      dir,
      { 'client-certificate': 'client.crt', 'client-key': 'client.key' },
      { 'certificate-authority-data': Buffer.from('CA').toString('base64'), 'tls-server-name': 'api' },
    );
    const options = await optionsFor(file);
    expect((options.cert as Buffer).toString()).toBe('CERT');
    expect((options.key as Buffer).toString()).toBe('KEY');
    expect((options.ca as Buffer).toString()).toBe('CA');
    expect(options.servername).toBe('api');
  });

  it('checks the server with the cluster’s TLS settings whatever the context’s user', async () => {
    const dir = configDir();
    const file = join(dir, 'config');
    writeFileSync(
      file,
      JSON.stringify({
        'current-context': 'main',
        clusters: [
          {
            name: 'c',
            cluster: {
              server: 'https://api.example:6443',
              'certificate-authority-data': Buffer.from('CA').toString('base64'),
              'tls-server-name': 'api',
            },
          },
        ],
        users: [],
        contexts: [{ name: 'main', context: { cluster: 'c', user: 'missing' } }],
      }),
    );

    const options = await optionsFor(file);

    expect((options.ca as Buffer).toString()).toBe('CA');
    expect(options.servername).toBe('api');
  });

  it('refuses a CA together with insecure-skip-tls-verify rather than ignore the CA', async () => {
    const file = kubeconfig(
      configDir(),
      { token: 't' },
      {
        'certificate-authority-data': Buffer.from('CA').toString('base64'),
        'insecure-skip-tls-verify': true,
      },
    );

    await expect(optionsFor(file)).rejects.toThrow(
      'specifying a root certificates file with the insecure flag is not allowed',
    );
  });

  it('sends a bearer token, re-read from its file on every call so rotation takes effect', async () => {
    const dir = configDir();
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'first\n');
    const access = new KubeAccess();
    access.loadFromFile(
      kubeconfig(
        dir,
        { 'auth-provider': { name: 'tokenFile', config: { tokenFile } } },
        { 'insecure-skip-tls-verify': true },
      ),
    );
    const first: https.RequestOptions = {};
    await access.applyToHTTPSOptions(first);
    expect(first.headers).toMatchObject({ Authorization: 'Bearer first' });
    expect(first.rejectUnauthorized).toBe(false);
    writeFileSync(tokenFile, 'second');
    const second: https.RequestOptions = {};
    await access.applyToHTTPSOptions(second);
    expect(second.headers).toMatchObject({ Authorization: 'Bearer second' });
  });

  it('reads a user’s tokenFile relative to the kubeconfig, again on every call', async () => {
    const dir = configDir();
    writeFileSync(join(dir, 'token'), 'first\n');
    const access = new KubeAccess();
    access.loadFromFile(kubeconfig(dir, { tokenFile: 'token' }));
    const first: https.RequestOptions = {};
    await access.applyToHTTPSOptions(first);
    writeFileSync(join(dir, 'token'), 'second');
    const second: https.RequestOptions = {};
    await access.applyToHTTPSOptions(second);

    expect(first.headers).toMatchObject({ Authorization: 'Bearer first' });
    expect(second.headers).toMatchObject({ Authorization: 'Bearer second' });
  });

  it('refuses an empty tokenFile (one caught mid-rotation) rather than go out anonymous', async () => {
    const dir = configDir();
    writeFileSync(join(dir, 'token'), '\n');
    const access = new KubeAccess();
    access.loadFromFile(kubeconfig(dir, { tokenFile: 'token' }));

    await expect(access.applyToHTTPSOptions({})).rejects.toThrow(
      `the token file ${join(dir, 'token')} is empty`,
    );
  });

  it('sends every impersonation field: a header line per group and extra value', async () => {
    const options = await optionsFor(
      kubeconfig(configDir(), {
        token: 't',
        as: 'alice',
        'as-groups': ['deployers', 'auditors'],
        'as-uid': '1234',
        'as-user-extra': { 'example.com/scopes': ['read', 'write'], reason: ['deploy'] },
      }),
    );

    expect(options.headers).toEqual({
      Authorization: 'Bearer t',
      'Impersonate-User': 'alice',
      'Impersonate-Group': ['deployers', 'auditors'],
      'Impersonate-Uid': '1234',
      'Impersonate-Extra-example.com%2Fscopes': ['read', 'write'],
      'Impersonate-Extra-reason': ['deploy'],
    });
  });

  it.each([
    ['reason', 'reason'],
    ['example.com/scopes', 'example.com%2Fscopes'],
    ['100%', '100%25'],
    ['ünï code', '%C3%BCn%C3%AF%20code'],
  ])('escapes the extra key %j as client-go: %j', (key, escaped) => {
    expect(escapeHeaderKey(key)).toBe(escaped);
  });

  it('sends an auth provider’s token (client-node runs those) with the kubeconfig’s TLS and impersonation', async () => {
    const options = await optionsFor(
      kubeconfig(
        configDir(),
        { 'auth-provider': { name: 'gcp', config: { 'access-token': 'gcp-token' } }, as: 'alice' },
        { 'certificate-authority-data': Buffer.from('CA').toString('base64') },
      ),
    );

    expect(options.headers).toEqual({ Authorization: 'Bearer gcp-token', 'Impersonate-User': 'alice' });
    expect((options.ca as Buffer).toString()).toBe('CA');
  });

  it('runs an exec plugin named relative to the kubeconfig and sends its token', async () => {
    const dir = configDir();
    const plugin = join(dir, 'plugin.sh');
    writeFileSync(
      plugin,
      '#!/bin/sh\necho \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-exec"}}\'\n',
    );
    chmodSync(plugin, 0o755);
    const options = await optionsFor(
      kubeconfig(dir, {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1',
          command: './plugin.sh',
          interactiveMode: 'Never',
        },
      }),
    );
    expect(options.headers).toMatchObject({ Authorization: 'Bearer from-exec' });
  });

  it('names a missing exec plugin and shows its install hint', async () => {
    const dir = configDir();
    const access = new KubeAccess();
    access.loadFromFile(
      kubeconfig(dir, {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1',
          command: 'pushgate-test-no-such-plugin',
          interactiveMode: 'Never',
          installHint: 'Install it with: apt-get install no-such-plugin',
        },
      }),
    );

    await expect(access.applyToHTTPSOptions({})).rejects.toThrow(
      /cannot run exec credential plugin "pushgate-test-no-such-plugin": .*ENOENT.*\nInstall it with: apt-get install no-such-plugin$/s,
    );
  });

  it('runs an exec plugin again once its credential has expired', async () => {
    const dir = configDir();
    const plugin = join(dir, 'plugin.sh');
    // Each run hands out a token numbered by the runs so far, already expired.
    writeFileSync(
      plugin,
      '#!/bin/sh\necho run >> "$(dirname "$0")/runs"\nn=$(wc -l < "$(dirname "$0")/runs")\n' +
        'echo "{\\"apiVersion\\":\\"client.authentication.k8s.io/v1beta1\\",\\"kind\\":\\"ExecCredential\\",' +
        '\\"status\\":{\\"token\\":\\"t$n\\",\\"expirationTimestamp\\":\\"2020-01-01T00:00:00Z\\"}}"\n',
    );
    chmodSync(plugin, 0o755);
    const access = new KubeAccess();
    access.loadFromFile(
      kubeconfig(dir, { exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: plugin } }),
    );
    const tokens: unknown[] = [];
    for (let i = 0; i < 2; i++) {
      const options: https.RequestOptions = {};
      await access.applyToHTTPSOptions(options);
      tokens.push((options.headers as Record<string, string>).Authorization);
    }
    expect(tokens).toEqual(['Bearer t1', 'Bearer t2']);
  });

  it('describes the pod service account in a cluster, with IPv6 hosts in brackets', () => {
    const access = new KubeAccess();
    access.loadFromCluster({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' });
    expect(access.getCurrentCluster()?.server).toBe('https://[fd00::1]:443');
    const provider = access.getCurrentUser()?.authProvider as { config: { tokenFile: string } };
    expect(provider.config.tokenFile).toBe('/var/run/secrets/kubernetes.io/serviceaccount/token');
  });
});

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { closeClusterClients, createClusterClient } from '../../src/kube/cluster.js';
import {
  createTestNamespace,
  kubeConfigFromTest,
  kubeconfigPathFromTest,
  serviceAccountToken,
  whoAmI,
  type TestNamespace,
} from '../helpers/kube.js';

let dir: string;
let namespace: TestNamespace;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pushgate-kubeconfig-credentials-'));
  namespace = await createTestNamespace('kubeconfig-credentials');
});

afterEach(() => closeClusterClients());

afterAll(async () => {
  await namespace.cleanup();
  await rm(dir, { recursive: true, force: true });
});

/** A kubeconfig in `folder` for the test API server, its one user `user`. */
async function kubeconfigWithUser(folder: string, user: Record<string, unknown>): Promise<string> {
  const cluster = kubeConfigFromTest().getCurrentCluster()!;
  const file = path.join(folder, 'kubeconfig');
  await writeFile(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'c', cluster: { server: cluster.server, 'certificate-authority-data': cluster.caData } },
      ],
      users: [{ name: 'deployer', user }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'deployer' } }],
      'current-context': 'ctx',
    }),
  );
  return file;
}

describe('a kubeconfig user with tokenFile (real kube-apiserver)', () => {
  it('authenticates with the token the file holds, the path relative to the kubeconfig', async () => {
    const account = await serviceAccountToken(namespace.name, 'token-file');
    const folder = await mkdtemp(path.join(dir, 'token-file-'));
    await writeFile(path.join(folder, 'token'), `${account.token}\n`);
    const file = await kubeconfigWithUser(folder, { tokenFile: 'token' });

    const user = await whoAmI(createClusterClient({ name: 'token-file', kubeconfig: file }, {}));

    expect(user.username).toBe(`system:serviceaccount:${namespace.name}:${account.name}`);
  });

  it('sends the inline token when both are set, as the kubeconfig format says', async () => {
    const inline = await serviceAccountToken(namespace.name, 'inline');
    const fromFile = await serviceAccountToken(namespace.name, 'from-file');
    const folder = await mkdtemp(path.join(dir, 'token-both-'));
    await writeFile(path.join(folder, 'token'), fromFile.token);
    const file = await kubeconfigWithUser(folder, { token: inline.token, tokenFile: 'token' });

    const user = await whoAmI(createClusterClient({ name: 'token-both', kubeconfig: file }, {}));

    expect(user.username).toBe(`system:serviceaccount:${namespace.name}:${inline.name}`);
  });
});

describe('a kubeconfig user that impersonates (real kube-apiserver)', () => {
  it('is taken for the user, groups, uid and extras its as-* fields name', async () => {
    // The admin (system:masters) may impersonate anyone.
    const admin = parse(await readFile(kubeconfigPathFromTest(), 'utf8')) as {
      users: { user: Record<string, unknown> }[];
    };
    const folder = await mkdtemp(path.join(dir, 'impersonate-'));
    const file = await kubeconfigWithUser(folder, {
      ...admin.users[0]!.user,
      as: 'alice',
      'as-groups': ['deployers', 'auditors'],
      'as-uid': '1234',
      'as-user-extra': { 'example.com/scopes': ['read', 'write'], reason: ['deploy'] },
    });

    const user = await whoAmI(createClusterClient({ name: 'impersonate', kubeconfig: file }, {}));

    expect(user).toEqual({
      username: 'alice',
      uid: '1234',
      groups: ['deployers', 'auditors', 'system:authenticated'],
      extra: { 'example.com/scopes': ['read', 'write'], reason: ['deploy'] },
    });
  });
});

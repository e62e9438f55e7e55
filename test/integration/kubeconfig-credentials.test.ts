import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { KubeApiError } from '../../src/kube/api-error.js';
import {
  closeClusterClients,
  ClusterClient,
  createClusterClient,
  loadKubeConfig,
} from '../../src/kube/cluster.js';
import { failuresError } from '../../src/kube/failures.js';
import { KubeTransport } from '../../src/kube/http.js';
import { planObjects } from '../../src/kube/plan.js';
import type { PreparedObject } from '../../src/manifests/prepare.js';
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

/**
 * A kubeconfig in `folder` for the test API server (or `server`), its one user `user`; replaced
 * as a Secret volume replaces it, by a rename.
 */
async function kubeconfigWithUser(
  folder: string,
  user: Record<string, unknown>,
  server?: { server: string; caData?: string },
): Promise<string> {
  const cluster = server ?? kubeConfigFromTest().getCurrentCluster()!;
  const file = path.join(folder, 'kubeconfig');
  const entry = cluster.caData
    ? { server: cluster.server, 'certificate-authority-data': cluster.caData }
    : { server: cluster.server };
  await writeFile(
    `${file}.new`,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: entry }],
      users: [{ name: 'deployer', user }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'deployer' } }],
      'current-context': 'ctx',
    }),
  );
  await rename(`${file}.new`, file);
  return file;
}

/** The admin's user entry of the test kubeconfig: a client certificate in system:masters. */
async function adminUser(): Promise<Record<string, unknown>> {
  const admin = parse(await readFile(kubeconfigPathFromTest(), 'utf8')) as {
    users: { user: Record<string, unknown> }[];
  };
  return admin.users[0]!.user;
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

describe('a kubeconfig with both inline data and files (real kube-apiserver)', () => {
  it('uses the inline CA, certificate and key over files it also names, as kubectl does', async () => {
    const folder = await mkdtemp(path.join(dir, 'data-and-file-'));
    const cluster = kubeConfigFromTest().getCurrentCluster()!;
    expect(cluster.caData).toBeTruthy();
    // Files left behind by an older setup: gone, as kubectl never reads them.
    const file = path.join(folder, 'kubeconfig');
    await writeFile(
      file,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'c',
            cluster: {
              server: cluster.server,
              'certificate-authority': 'gone/ca.crt',
              'certificate-authority-data': cluster.caData,
            },
          },
        ],
        users: [
          {
            name: 'admin',
            user: { ...(await adminUser()), 'client-certificate': 'gone/a.crt', 'client-key': 'gone/a.key' },
          },
        ],
        contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'admin' } }],
        'current-context': 'ctx',
      }),
    );

    const user = await whoAmI(createClusterClient({ name: 'data-and-file', kubeconfig: file }, {}));

    expect(user.groups).toContain('system:masters');
  });
});

describe('a kubeconfig user that impersonates (real kube-apiserver)', () => {
  it('is taken for the user, groups, uid and extras its as-* fields name', async () => {
    // The admin (system:masters) may impersonate anyone.
    const folder = await mkdtemp(path.join(dir, 'impersonate-'));
    const file = await kubeconfigWithUser(folder, {
      ...(await adminUser()),
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

describe('a kubeconfig rotated under a running worker (real kube-apiserver)', () => {
  it('takes the new inline token once the API server refuses the old one', async () => {
    const folder = await mkdtemp(path.join(dir, 'rotated-token-'));
    const file = await kubeconfigWithUser(folder, { token: 'revoked-token' });
    const client = createClusterClient({ name: 'rotated', kubeconfig: file }, {});
    await expect(whoAmI(client)).rejects.toMatchObject({ status: 401 });

    const account = await serviceAccountToken(namespace.name, 'rotated');
    await kubeconfigWithUser(folder, { token: account.token });
    const user = await whoAmI(client);

    expect(user.username).toBe(`system:serviceaccount:${namespace.name}:${account.name}`);
  });

  it('takes a new server, CA and client certificate when it next loads credentials', async () => {
    const folder = await mkdtemp(path.join(dir, 'moved-'));
    const file = await kubeconfigWithUser(folder, { token: 't' }, { server: 'https://127.0.0.1:1' });
    const kc = loadKubeConfig({ name: 'moved', kubeconfig: file }, {});
    // Credentials loaded for every request: what the minute between loads would otherwise be.
    const client = new ClusterClient('moved', kc, new KubeTransport(kc, 'moved', { credentialTtlMs: 0 }));
    try {
      const refused = await whoAmI(client).catch((error: unknown) => error);
      expect((refused as KubeApiError).message).toContain('cluster moved (https://127.0.0.1:1)');

      await kubeconfigWithUser(folder, await adminUser());

      expect((await whoAmI(client)).groups).toContain('system:masters');
    } finally {
      client.close();
    }
  });

  it('keeps the last good credentials while the file does not load (caught half-written)', async () => {
    const folder = await mkdtemp(path.join(dir, 'half-written-'));
    const file = await kubeconfigWithUser(folder, await adminUser());
    const kc = loadKubeConfig({ name: 'half', kubeconfig: file }, {});
    const client = new ClusterClient('half', kc, new KubeTransport(kc, 'half', { credentialTtlMs: 0 }));
    try {
      const text = await readFile(file, 'utf8');
      // Cut where the users begin: valid YAML without the users and contexts that followed.
      await writeFile(file, text.slice(0, text.indexOf('users:')));

      expect((await whoAmI(client)).groups).toContain('system:masters');
      expect(kc.reloadProblem).toBe('cluster half: the kubeconfig has no current context with a cluster');
    } finally {
      client.close();
    }
  });

  it('says so when the old credentials are refused and the changed file does not load', async () => {
    const folder = await mkdtemp(path.join(dir, 'refused-half-written-'));
    const file = await kubeconfigWithUser(folder, { token: 'revoked-token' });
    const client = createClusterClient({ name: 'refused', kubeconfig: file }, {});
    await expect(whoAmI(client)).rejects.toMatchObject({ status: 401 });

    await writeFile(file, 'apiVersion: v1\nkind: Config\nclusters:\n  - name: c\n');
    const refused = (await whoAmI(client).catch((error: unknown) => error)) as KubeApiError;

    expect(refused.status).toBe(401);
    expect(refused.message).toContain(
      'the kubeconfig has changed but does not load, so the last good one was used: cluster refused: cannot load kubeconfig: clusters[0].cluster is missing',
    );
  });
});

/** A private key that is not the admin certificate's: what a rotation caught halfway leaves. */
function otherKeyData(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return Buffer.from(privateKey.export({ type: 'pkcs8', format: 'pem' })).toString('base64');
}

describe('credentials refused or unusable (real kube-apiserver)', () => {
  const configMap = (namespaceName: string): PreparedObject => ({
    object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: namespaceName } },
    source: { file: 'env/app.yaml', document: 1 },
    ref: { apiVersion: 'v1', kind: 'ConfigMap', namespace: namespaceName, name: 'a' },
    resource: { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true },
    stage: 2,
    kindFromSet: false,
  });

  it('fail a dry-run the API server refused the token of as the credentials’ fault, not permanent', async () => {
    const folder = await mkdtemp(path.join(dir, 'refused-dry-run-'));
    const file = await kubeconfigWithUser(folder, { token: 'revoked-token' });
    const client = createClusterClient({ name: 'refused-dry-run', kubeconfig: file }, {});

    const { failures } = await planObjects(client, [configMap(namespace.name)]);
    const error = failuresError(failures, 'server-side dry-run rejected the set, nothing was changed', []);

    expect(failures[0]).toMatchObject({ permanent: false, unauthorized: true });
    expect(error.code).toBe('unauthorized');
    expect(error.message).toMatch(
      /^the API server refused the kubeconfig's credentials \(401 Unauthorized\)/,
    );
  });

  it('fail an object as transient, naming the cluster, when node refuses a header value', async () => {
    const folder = await mkdtemp(path.join(dir, 'bad-header-'));
    const file = await kubeconfigWithUser(folder, { ...(await adminUser()), as: 'alice\r\nX-Injected: 1' });
    const client = createClusterClient({ name: 'bad-header', kubeconfig: file }, {});

    const { failures } = await planObjects(client, [configMap(namespace.name)]);

    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ permanent: false, network: true });
    expect(failures[0]?.message).toContain('cluster bad-header (https://');
  });

  it('name the cluster when a client key is not its certificate’s, as transient', async () => {
    const folder = await mkdtemp(path.join(dir, 'mismatch-'));
    const file = await kubeconfigWithUser(folder, {
      ...(await adminUser()),
      'client-key-data': otherKeyData(),
    });
    const client = createClusterClient({ name: 'mismatch', kubeconfig: file }, {});

    const error = (await whoAmI(client).catch((e: unknown) => e)) as KubeApiError;

    expect(error.status).toBeUndefined();
    expect(error.transient).toBe(true);
    expect(error.message).toMatch(
      /^cluster mismatch \(https:\/\/[^)]+\): POST \/apis\/authentication\.k8s\.io\/v1\/selfsubjectreviews: cannot load the cluster credentials: the client certificate, key or CA cannot be used: .*key values mismatch/,
    );
  });

  it('keep the pair in use while the kubeconfig holds a key that is not its certificate’s', async () => {
    const folder = await mkdtemp(path.join(dir, 'mid-rotation-'));
    const admin = await adminUser();
    const file = await kubeconfigWithUser(folder, admin);
    const kc = loadKubeConfig({ name: 'mid-rotation', kubeconfig: file }, {});
    const client = new ClusterClient(
      'mid-rotation',
      kc,
      new KubeTransport(kc, 'mid-rotation', { credentialTtlMs: 0 }),
    );
    try {
      expect((await whoAmI(client)).groups).toContain('system:masters');

      await kubeconfigWithUser(folder, { ...admin, 'client-key-data': otherKeyData() });

      expect((await whoAmI(client)).groups).toContain('system:masters');
    } finally {
      client.close();
    }
  });
});

/** An HTTP CONNECT proxy on a spare loopback port that records where each tunnel went. */
async function startConnectProxy(): Promise<{ url: string; tunnels: string[]; close(): Promise<void> }> {
  const tunnels: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_request, response) => response.writeHead(405).end());
  server.on('connect', (request: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    tunnels.push(request.url ?? '');
    const [host, port] = (request.url ?? '').split(':');
    const upstream = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    }
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    tunnels,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('a cluster reached through proxy-url (real kube-apiserver, CONNECT proxy)', () => {
  let proxy: Awaited<ReturnType<typeof startConnectProxy>>;

  beforeAll(async () => {
    proxy = await startConnectProxy();
  });
  afterAll(() => proxy.close());

  /** A kubeconfig in `folder` for the test API server through the proxy, its one user `user`. */
  async function proxiedKubeconfig(folder: string, user: Record<string, unknown>): Promise<string> {
    const file = await kubeconfigWithUser(folder, user);
    const config = parse(await readFile(file, 'utf8')) as {
      clusters: { cluster: Record<string, unknown> }[];
    };
    config.clusters[0]!.cluster['proxy-url'] = proxy.url;
    await writeFile(file, stringify(config));
    return file;
  }

  it('presents the client certificate an exec plugin hands out', async () => {
    const folder = await mkdtemp(path.join(dir, 'proxied-exec-'));
    const admin = await adminUser();
    const pem = (field: string): string => Buffer.from(String(admin[field]), 'base64').toString('utf8');
    await writeFile(
      path.join(folder, 'credential.json'),
      JSON.stringify({
        apiVersion: 'client.authentication.k8s.io/v1',
        kind: 'ExecCredential',
        status: {
          clientCertificateData: pem('client-certificate-data'),
          clientKeyData: pem('client-key-data'),
        },
      }),
    );
    const file = await proxiedKubeconfig(folder, {
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1',
        command: 'cat',
        args: [path.join(folder, 'credential.json')],
        interactiveMode: 'Never',
      },
    });
    const before = proxy.tunnels.length;

    const user = await whoAmI(createClusterClient({ name: 'proxied-exec', kubeconfig: file }, {}));

    expect(user.groups).toContain('system:masters');
    expect(proxy.tunnels.length).toBeGreaterThan(before);
  });

  it('sends what pushgate reads itself: a tokenFile and impersonation', async () => {
    const account = await serviceAccountToken(namespace.name, 'proxied');
    const folder = await mkdtemp(path.join(dir, 'proxied-token-file-'));
    await writeFile(path.join(folder, 'token'), account.token);
    const admin = await proxiedKubeconfig(folder, {
      ...(await adminUser()),
      as: 'alice',
      'as-groups': ['qa'],
    });
    const impersonated = await whoAmI(createClusterClient({ name: 'proxied-as', kubeconfig: admin }, {}));
    const file = await proxiedKubeconfig(folder, { tokenFile: 'token' });

    const user = await whoAmI(createClusterClient({ name: 'proxied-token-file', kubeconfig: file }, {}));

    expect(impersonated).toMatchObject({ username: 'alice', groups: ['qa', 'system:authenticated'] });
    expect(user.username).toBe(`system:serviceaccount:${namespace.name}:${account.name}`);
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeClusterClients, createClusterClient } from '../../src/kube/cluster.js';
import { KubeApiError } from '../../src/kube/api-error.js';
import { kubeConfigFromTest } from '../helpers/kube.js';

let dir: string;

async function kubeconfigFor(server: string, caData?: string): Promise<string> {
  const file = path.join(dir, 'kubeconfig');
  await writeFile(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'c', cluster: { server, ...(caData ? { 'certificate-authority-data': caData } : {}) } },
      ],
      users: [{ name: 'u', user: { token: 'not-a-real-token' } }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'ctx',
    }),
  );
  return file;
}

async function failure(promise: Promise<unknown>): Promise<KubeApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KubeApiError);
  return error as KubeApiError;
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pushgate-transport-'));
});

afterEach(async () => {
  closeClusterClients();
  await rm(dir, { recursive: true, force: true });
});

describe('Kubernetes transport: a cluster that does not answer', () => {
  it('names the cluster and its server in a network error, which stays transient', async () => {
    const kube = createClusterClient(
      { name: 'far', kubeconfig: await kubeconfigFor('https://127.0.0.1:1') },
      {},
    );

    const error = await failure(kube.transport.request({ method: 'GET', path: '/api/v1' }));

    expect(error.message).toBe(
      'cluster far (https://127.0.0.1:1): GET /api/v1: connect ECONNREFUSED 127.0.0.1:1',
    );
    expect(error.status).toBeUndefined();
    expect(error.transient).toBe(true);
  });

  it('leaves out credentials a server URL carries', async () => {
    const kube = createClusterClient(
      { name: 'far', kubeconfig: await kubeconfigFor('https://admin:hunter2@127.0.0.1:1/prefix/') },
      {},
    );

    const error = await failure(kube.transport.request({ method: 'GET', path: '/version' }));

    expect(error.message).toMatch(/^cluster far \(https:\/\/127\.0\.0\.1:1\/prefix\): GET \/version: /);
    expect(error.message).not.toContain('hunter2');
  });
});

describe('Kubernetes transport: credentials the API server refuses', () => {
  it('names the cluster and says the credentials were refused, not only "Unauthorized"', async () => {
    const real = kubeConfigFromTest().getCurrentCluster()!;
    const kube = createClusterClient(
      { name: 'prod', kubeconfig: await kubeconfigFor(real.server, real.caData) },
      {},
    );

    const error = await failure(kube.transport.request({ method: 'GET', path: '/api/v1/namespaces' }));

    expect(error.status).toBe(401);
    expect(error.message).toBe(
      `cluster prod (${real.server}): GET /api/v1/namespaces: the API server refused the kubeconfig's credentials (401 Unauthorized: a wrong or expired token or client certificate)`,
    );
  });
});

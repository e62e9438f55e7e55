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

/** The test API server, reached through an exec credential plugin that is down (as `aws eks get-token` can be). */
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pushgate-exec-'));
  const config = parse(await readFile(kubeconfigPathFromTest(), 'utf8')) as {
    users: { name: string; user: Record<string, unknown> }[];
  };
  for (const entry of config.users) {
    entry.user = {
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1',
        command: 'sh',
        args: ['-c', 'echo "token service unavailable" >&2; exit 1'],
        interactiveMode: 'Never',
      },
    };
  }
  const file = path.join(dir, 'kubeconfig');
  await writeFile(file, stringify(config));
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

  it('fail a prune delete as transient, so the object is deleted on a retry', async () => {
    const pruned = await pruneObjects(kube, { name: 'env', namespace: 'default' }, [configMap.ref], () =>
      Promise.resolve(),
    );

    expect(pruned.failures).toHaveLength(1);
    expect(pruned.failures[0]?.permanent).toBe(false);
  });
});

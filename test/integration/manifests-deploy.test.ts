import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { environmentSchema } from '../../src/config/schema.js';
import { closeClusterClients, createClusterClient } from '../../src/kube/cluster.js';
import { deployToCluster } from '../../src/kube/deploy.js';
import { silentLogger } from '../../src/lib/logger.js';
import { loadManifests } from '../../src/manifests/load.js';
import { createTestNamespace, kubeconfigPathFromTest } from '../helpers/kube.js';

afterAll(() => closeClusterClients());

describe('manifests from a repository folder', () => {
  it('deploys every document of every file and ignores hidden files and kustomization folders', async () => {
    const ns = await createTestNamespace('manifests-folder');
    const repo = await mkdtemp(path.join(os.tmpdir(), 'pushgate-repo-'));
    try {
      const write = async (relative: string, content: string): Promise<void> => {
        await mkdir(path.dirname(path.join(repo, relative)), { recursive: true });
        await writeFile(path.join(repo, relative), content);
      };
      await write(
        'clusters/test/app.yaml',
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\ndata:\n  mode: "0644"\n---\n' +
          'apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n',
      );
      await write(
        'clusters/test/extra/two.json',
        JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'two' } }),
      );
      await write('clusters/test/.draft.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: draft\n');
      await write('clusters/test/kustom/kustomization.yaml', 'resources: [cm.yaml]\n');
      await write(
        'clusters/test/kustom/cm.yaml',
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kustomized\n',
      );
      const environment = environmentSchema.parse({
        name: 'folder',
        repo: { provider: 'gitlab', name: 'acme/env', url: 'file:///nowhere' },
        branch: 'main',
        path: 'clusters/test',
        cluster: 'test',
        namespace: ns.name,
        allow: { namespaces: [ns.name] },
        healthTimeout: 0,
      });

      const manifests = await loadManifests(repo, environment.path);
      const outcome = await deployToCluster(
        createClusterClient({ name: 'test', kubeconfig: kubeconfigPathFromTest() }),
        {
          environment,
          manifests,
          sha: 'a'.repeat(40),
          jobId: 'job',
          logger: silentLogger(),
          assertLockHeld: () => Promise.resolve(),
        },
      );

      expect(outcome.resources).toEqual([
        { apiVersion: 'v1', kind: 'ConfigMap', namespace: ns.name, name: 'one', action: 'created' },
        { apiVersion: 'v1', kind: 'ConfigMap', namespace: ns.name, name: 'two', action: 'created' },
        { apiVersion: 'v1', kind: 'Service', namespace: ns.name, name: 'web', action: 'created' },
      ]);
    } finally {
      await rm(repo, { recursive: true, force: true });
    }
  });
});

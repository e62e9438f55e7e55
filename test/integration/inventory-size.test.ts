import { randomBytes, randomInt } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { PushgateError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { closeClusterClients, createClusterClient, type ClusterClient } from '../../src/kube/cluster.js';
import { deployToCluster } from '../../src/kube/deploy.js';
import {
  assertInventoryFits,
  INVENTORY_MAX_OBJECTS,
  inventoryObject,
  readInventory,
  writeInventory,
  type Inventory,
} from '../../src/kube/inventory.js';
import type { DeployError, DeployRequest } from '../../src/kube/types.js';
import type { ObjectRef } from '../../src/manifests/types.js';
import { CONFIG_MAPS, createTestNamespace, kubeconfigPathFromTest } from '../helpers/kube.js';
import { testEnvironment } from '../helpers/test-environment.js';

afterAll(() => closeClusterClients());

function client(): ClusterClient {
  return createClusterClient({ name: 'test', kubeconfig: kubeconfigPathFromTest() });
}

/** A name of the longest kind the API server takes, which gzip cannot shrink much. */
function randomName(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let name = 'c';
  while (name.length < 253) name += alphabet[randomInt(alphabet.length)];
  return name;
}

function configMapRefs(namespace: string, count: number, name = (i: number) => `cm-${i}`): ObjectRef[] {
  return Array.from({ length: count }, (_, i) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    namespace,
    name: name(i),
  }));
}

/** The list's order is the inventory's own (apply order): compared by name. */
function byName(inventory: Inventory | undefined): Inventory | undefined {
  return (
    inventory && { ...inventory, objects: [...inventory.objects].sort((a, b) => (a.name < b.name ? -1 : 1)) }
  );
}

async function inventoryKeys(
  kube: ClusterClient,
  env: ReturnType<typeof testEnvironment>,
): Promise<string[]> {
  const live = await kube.get(CONFIG_MAPS, env.namespace, `pushgate-inventory-${env.name}`);
  return [
    ...Object.keys(live?.data ?? {}).map((key) => `data.${key}`),
    ...Object.keys(live?.binaryData ?? {}).map((key) => `binaryData.${key}`),
  ].sort();
}

describe('an inventory larger than a ConfigMap holds as plain lines (real kube-apiserver)', () => {
  it('is kept gzipped, read back whole, and plain again once it fits', async () => {
    const ns = await createTestNamespace('inventory-gzip');
    const env = testEnvironment(ns.name);
    const kube = client();
    // About 1.2 MB as plain lines, over the 1 MiB the API server lets a ConfigMap hold.
    const large: Inventory = { revision: 'a'.repeat(40), objects: configMapRefs(ns.name, 14_000) };

    await writeInventory(kube, env, large);

    expect(await inventoryKeys(kube, env)).toEqual([
      'binaryData.objects.json.gz',
      'data.objects.json',
      'data.revision',
    ]);
    // The plain list holds one line that is no ref: a version that reads only the plain list
    // fails the deploy rather than take the environment for one that owns nothing.
    const live = await kube.get(CONFIG_MAPS, env.namespace, `pushgate-inventory-${env.name}`);
    expect(live?.data).toMatchObject({ 'objects.json': '{"listedIn":"binaryData.objects.json.gz"}' });
    expect(byName(await readInventory(kube, env))).toEqual(byName(large));

    const small: Inventory = { revision: 'b'.repeat(40), objects: configMapRefs(ns.name, 3) };
    await writeInventory(kube, env, small);

    // The gzipped list goes with the write: left beside the plain one, its refs would be read too.
    expect(await inventoryKeys(kube, env)).toEqual(['data.objects.json', 'data.revision']);
    expect(byName(await readInventory(kube, env))).toEqual(byName(small));
  });

  it('refuses a set whose list would not fit even gzipped before any write, and at once', async () => {
    const ns = await createTestNamespace('inventory-too-large');
    const env = testEnvironment(ns.name);
    const kube = client();
    const count = 9_000;
    const manifests = configMapRefs(ns.name, count, randomName).map((ref, index) => ({
      object: { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name } },
      source: { file: 'env/many.yaml', document: index + 1 },
    }));
    const request: DeployRequest = {
      environment: env,
      manifests,
      sha: randomBytes(20).toString('hex'),
      jobId: 'job-1',
      logger: silentLogger(),
      assertLockHeld: () => Promise.resolve(),
    };

    const error = (await deployToCluster(kube, request).then(
      () => undefined,
      (e: unknown) => e,
    )) as DeployError;

    expect(error).toBeInstanceOf(PushgateError);
    expect(error.permanent).toBe(true);
    expect(error.message).toMatch(
      new RegExp(
        `^${env.name} holds ${count} objects \\(those its earlier deploys applied and it still lists included\\): ` +
          'their list is \\d+ bytes gzipped, over the 1048576 bytes a ConfigMap ' +
          `holds, for its inventory ConfigMap ${ns.name}/pushgate-inventory-${env.name}; split the manifests into several ` +
          'environments. Nothing was changed$',
      ),
    );
    expect(new Set(error.resources.map((resource) => resource.action))).toEqual(new Set(['skipped']));
    expect(error.resources).toHaveLength(count);
    expect(await kube.list(CONFIG_MAPS, ns.name)).toEqual([]);
  });

  it('reads back a list of any length, and refuses one that unpacks past what a real list can be', async () => {
    const ns = await createTestNamespace('inventory-hand-made');
    const env = testEnvironment(ns.name);
    const kube = client();
    const handMade = async (lines: string) => {
      const packed = gzipSync(lines).toString('base64');
      await kube.apply(CONFIG_MAPS, {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: `pushgate-inventory-${env.name}`, namespace: ns.name },
        data: { revision: 'c'.repeat(40) },
        binaryData: { 'objects.json.gz': packed },
      });
    };
    const refs = configMapRefs(ns.name, 200_000, (i) => `c${i}`);
    await handMade(refs.map((ref) => JSON.stringify(ref)).join('\n'));

    expect((await readInventory(kube, env))?.objects).toHaveLength(200_000);

    // 30 MiB of refs in ~100 KB: any namespace's ConfigMap labelled as an inventory is read.
    await handMade(`${JSON.stringify(refs[0])}\n`.repeat(Math.ceil((30 * 1024 * 1024) / 80)));

    const error = await readInventory(kube, env).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PushgateError);
    expect((error as PushgateError).message).toMatch(
      /objects\.json\.gz is not a gzipped list of object refs of at most 24 MiB/,
    );
  });

  it('refuses a list that grows past the objects it keeps a list of, and lets one past it shrink', () => {
    const env = testEnvironment('apps');
    const most = configMapRefs('apps', INVENTORY_MAX_OBJECTS);
    const more = configMapRefs('apps', INVENTORY_MAX_OBJECTS + 1);

    expect(() => assertInventoryFits(env, most, 0)).not.toThrow();
    expect(() => assertInventoryFits(env, more, INVENTORY_MAX_OBJECTS)).toThrow(
      `${env.name} holds ${INVENTORY_MAX_OBJECTS + 1} objects (those its earlier deploys applied and it still lists ` +
        `included): more than the ${INVENTORY_MAX_OBJECTS} pushgate keeps a list of`,
    );
    // Listed already (an earlier version kept no count): a deploy that drops objects goes on.
    expect(() => assertInventoryFits(env, more, INVENTORY_MAX_OBJECTS + 1)).not.toThrow();
  });

  it('writes the same list whatever order the refs come in: the check measures what is written', () => {
    const env = testEnvironment('apps');
    // Five kinds of each tenant's objects: together in manifest order, far apart in apply order.
    const kinds = ['Deployment', 'Service', 'ServiceAccount', 'ConfigMap', 'Secret'];
    const refs = Array.from({ length: 20_000 }, (_, i) => ({
      apiVersion: 'v1',
      kind: kinds[i % kinds.length]!,
      namespace: 'apps',
      name: `tenant-${randomBytes(8).toString('hex')}-${Math.floor(i / kinds.length)}`,
    }));
    const shuffled = [...refs].sort(() => randomInt(3) - 1);

    const written = inventoryObject(env, { revision: 'a'.repeat(40), objects: refs });

    expect(written.binaryData).toBeDefined();
    expect(inventoryObject(env, { revision: 'a'.repeat(40), objects: shuffled })).toEqual(written);
  });
});

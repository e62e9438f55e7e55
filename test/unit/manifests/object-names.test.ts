import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PushgateError } from '../../../src/lib/errors.js';
import { loadManifests } from '../../../src/manifests/load.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'pushgate-names-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function writeManifest(content: string): Promise<void> {
  await mkdir(path.join(root, 'env'), { recursive: true });
  await writeFile(path.join(root, 'env', 'objects.yaml'), content);
}

function configMap(name: string, namespace = 'apps'): string {
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${JSON.stringify(name)}\n  namespace: ${JSON.stringify(namespace)}\n`;
}

async function loadError(): Promise<PushgateError> {
  const error = await loadManifests(root, 'env').then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PushgateError);
  return error as PushgateError;
}

// A name is one segment of the object's API URL: "configmaps/.." resolves to the Namespace
// above it, which prune would then delete in the ConfigMap's stead.
describe('object names that would change the API path', () => {
  it.each(['..', '.', 'a/b', 'a%2Fb'])('refuses metadata.name %j with file and document', async (name) => {
    await writeManifest(`${configMap('fine')}---\n${configMap(name)}`);

    const error = await loadError();

    expect(error.code).toBe('manifest_invalid');
    expect(error.permanent).toBe(true);
    expect(error.message).toContain('env/objects.yaml document 2');
    expect(error.message).toContain('metadata.name: must not be "." or ".."');
  });

  it.each(['..', '.'])('refuses metadata.namespace %j', async (namespace) => {
    await writeManifest(configMap('web', namespace));

    const error = await loadError();

    expect(error.message).toContain('env/objects.yaml document 1');
    expect(error.message).toContain('metadata.namespace: must not be "." or ".."');
  });

  it('keeps names that only contain dots', async () => {
    await writeManifest(configMap('web.v1..2'));

    const manifests = await loadManifests(root, 'env');

    expect(manifests.map((m) => m.object.metadata.name)).toEqual(['web.v1..2']);
  });
});
